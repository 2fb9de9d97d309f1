//! Small word lists for fake but plausible names: each entry is (kanji, half-width kana).
//!
//! Owns only vocabulary. Every name is invented from these pieces; none is meant to match a
//! real institution or person.

/// A word and its reading in half-width katakana.
pub type Word = (&'static str, &'static str);

/// Place-like prefixes used in clinic, pharmacy and care-facility names.
pub const PREFIXES: &[Word] = &[
    ("さくら", "ｻｸﾗ"),
    ("ひまわり", "ﾋﾏﾜﾘ"),
    ("あおば", "ｱｵﾊﾞ"),
    ("みどり", "ﾐﾄﾞﾘ"),
    ("中央", "ﾁｭｳｵｳ"),
    ("駅前", "ｴｷﾏｴ"),
    ("本町", "ﾎﾝﾁｮｳ"),
    ("山手", "ﾔﾏﾃ"),
    ("若葉", "ﾜｶﾊﾞ"),
    ("旭", "ｱｻﾋ"),
    ("東", "ﾋｶﾞｼ"),
    ("西", "ﾆｼ"),
    ("南", "ﾐﾅﾐ"),
    ("北", "ｷﾀ"),
    ("ひかり", "ﾋｶﾘ"),
    ("つばさ", "ﾂﾊﾞｻ"),
    ("青空", "ｱｵｿﾞﾗ"),
    ("緑ヶ丘", "ﾐﾄﾞﾘｶﾞｵｶ"),
    ("桜町", "ｻｸﾗﾏﾁ"),
    ("富士見", "ﾌｼﾞﾐ"),
    ("すこやか", "ｽｺﾔｶ"),
    ("はなみずき", "ﾊﾅﾐｽﾞｷ"),
];

/// Common surnames (also used for persons).
pub const SURNAMES: &[Word] = &[
    ("佐藤", "ｻﾄｳ"),
    ("鈴木", "ｽｽﾞｷ"),
    ("高橋", "ﾀｶﾊｼ"),
    ("田中", "ﾀﾅｶ"),
    ("伊藤", "ｲﾄｳ"),
    ("渡辺", "ﾜﾀﾅﾍﾞ"),
    ("山本", "ﾔﾏﾓﾄ"),
    ("中村", "ﾅｶﾑﾗ"),
    ("小林", "ｺﾊﾞﾔｼ"),
    ("加藤", "ｶﾄｳ"),
    ("吉田", "ﾖｼﾀﾞ"),
    ("山田", "ﾔﾏﾀﾞ"),
    ("佐々木", "ｻｻｷ"),
    ("山口", "ﾔﾏｸﾞﾁ"),
    ("松本", "ﾏﾂﾓﾄ"),
    ("井上", "ｲﾉｳｴ"),
    ("木村", "ｷﾑﾗ"),
    ("林", "ﾊﾔｼ"),
    ("斎藤", "ｻｲﾄｳ"),
    ("清水", "ｼﾐｽﾞ"),
];

/// Clinic specialties.
pub const SPECIALTIES: &[Word] = &[
    ("内科", "ﾅｲｶ"),
    ("内科", "ﾅｲｶ"),
    ("内科", "ﾅｲｶ"),
    ("小児科", "ｼｮｳﾆｶ"),
    ("整形外科", "ｾｲｹｲｹﾞｶ"),
    ("耳鼻咽喉科", "ｼﾞﾋﾞｲﾝｺｳｶ"),
    ("皮膚科", "ﾋﾌｶ"),
    ("眼科", "ｶﾞﾝｶ"),
    ("循環器内科", "ｼﾞｭﾝｶﾝｷﾅｲｶ"),
    ("消化器内科", "ｼｮｳｶｷﾅｲｶ"),
    ("産婦人科", "ｻﾝﾌｼﾞﾝｶ"),
    ("外科", "ｹﾞｶ"),
    ("ファミリー", "ﾌｧﾐﾘｰ"),
];

/// Clinic name endings.
pub const CLINIC_SUFFIXES: &[Word] = &[
    ("クリニック", "ｸﾘﾆｯｸ"),
    ("クリニック", "ｸﾘﾆｯｸ"),
    ("医院", "ｲｲﾝ"),
    ("診療所", "ｼﾝﾘｮｳｼﾞｮ"),
];

/// Hospital name endings.
pub const HOSPITAL_SUFFIXES: &[Word] = &[
    ("総合病院", "ｿｳｺﾞｳﾋﾞｮｳｲﾝ"),
    ("記念病院", "ｷﾈﾝﾋﾞｮｳｲﾝ"),
    ("中央病院", "ﾁｭｳｵｳﾋﾞｮｳｲﾝ"),
    ("病院", "ﾋﾞｮｳｲﾝ"),
];

/// Care-facility name patterns: (before the prefix, after it), each with its kana.
pub const CARE_PATTERNS: &[(Word, Word)] = &[
    (("特別養護老人ホーム", "ﾄｸﾍﾞﾂﾖｳｺﾞﾛｳｼﾞﾝﾎｰﾑ"), ("苑", "ｴﾝ")),
    (("介護老人福祉施設", "ｶｲｺﾞﾛｳｼﾞﾝﾌｸｼｼｾﾂ"), ("の里", "ﾉｻﾄ")),
    (("グループホーム", "ｸﾞﾙｰﾌﾟﾎｰﾑ"), ("", "")),
    (("デイサービス", "ﾃﾞｲｻｰﾋﾞｽ"), ("センター", "ｾﾝﾀｰ")),
];

/// Public buildings that host mass-vaccination venues.
pub const VENUE_PLACES: &[Word] = &[
    ("市民体育館", "ｼﾐﾝﾀｲｲｸｶﾝ"),
    ("文化会館", "ﾌﾞﾝｶｶｲｶﾝ"),
    ("総合福祉センター", "ｿｳｺﾞｳﾌｸｼｾﾝﾀｰ"),
    ("公民館", "ｺｳﾐﾝｶﾝ"),
    ("コミュニティセンター", "ｺﾐｭﾆﾃｨｾﾝﾀｰ"),
];

/// Invented employers and universities running workplace venues.
pub const EMPLOYERS: &[Word] = &[
    ("みらい工業", "ﾐﾗｲｺｳｷﾞｮｳ"),
    ("あおぞら物流", "ｱｵｿﾞﾗﾌﾞﾂﾘｭｳ"),
    ("ひかり電機", "ﾋｶﾘﾃﾞﾝｷ"),
    ("若葉大学", "ﾜｶﾊﾞﾀﾞｲｶﾞｸ"),
    ("富士見製作所", "ﾌｼﾞﾐｾｲｻｸｼｮ"),
    ("東西商事", "ﾄｳｻﾞｲｼｮｳｼﾞ"),
    ("さくら信用金庫", "ｻｸﾗｼﾝﾖｳｷﾝｺ"),
];

/// Town names for street addresses.
pub const TOWNS: &[&str] = &[
    "本町", "栄町", "中央", "旭町", "緑町", "東町", "元町", "幸町", "松原", "若葉", "駅前", "泉町",
];

/// Short delivery notes (most sites have none).
pub const NOTES: &[&str] = &[
    "裏口から搬入してください",
    "到着前に電話連絡をお願いします",
    "正面玄関横の事務室で受け取ります",
    "昼休み(12:00-13:00)は不在",
];

/// Given names for persons: male.
pub const GIVEN_MALE: &[Word] = &[
    ("太郎", "ﾀﾛｳ"),
    ("一郎", "ｲﾁﾛｳ"),
    ("健", "ｹﾝ"),
    ("翔太", "ｼｮｳﾀ"),
    ("大輔", "ﾀﾞｲｽｹ"),
    ("誠", "ﾏｺﾄ"),
    ("浩", "ﾋﾛｼ"),
    ("隆", "ﾀｶｼ"),
    ("蓮", "ﾚﾝ"),
    ("悠真", "ﾕｳﾏ"),
];

/// Given names for persons: female.
pub const GIVEN_FEMALE: &[Word] = &[
    ("花子", "ﾊﾅｺ"),
    ("陽子", "ﾖｳｺ"),
    ("美咲", "ﾐｻｷ"),
    ("愛", "ｱｲ"),
    ("恵子", "ｹｲｺ"),
    ("由美", "ﾕﾐ"),
    ("陽菜", "ﾋﾅ"),
    ("結衣", "ﾕｲ"),
    ("幸子", "ｻﾁｺ"),
    ("和子", "ｶｽﾞｺ"),
];
