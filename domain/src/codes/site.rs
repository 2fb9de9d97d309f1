//! `SiteCode`: ten-character codes identifying vaccination sites.

use super::{CodeError, PrefectureCode, ascii_str, check_len, digit_value};

/// The check digit of the "modulus 10, weights 2-1, split" rule (Luhn) over
/// character *values*: from the rightmost value, multiply alternately by
/// 2, 1, 2, 1, …; add the decimal digits of each product (so 14 adds 1 + 4
/// and a letter value 10 × 1 adds 1 + 0); the check digit is
/// (10 − sum mod 10) mod 10.
///
/// Values are digit values 0..=9, or 10..=32 for the letters of a care
/// provider number (see [`SiteCode`]). For all-digit input this is exactly
/// the Luhn check digit.
pub fn mod10_w21_check_digit(values: &[u8]) -> u8 {
    let sum: u32 = values
        .iter()
        .rev()
        .zip([2u32, 1].into_iter().cycle())
        .map(|(&v, w)| digit_sum(u32::from(v) * w))
        .sum();
    // (10 − sum mod 10) is 10 when sum mod 10 is 0; the final `mod 10` maps
    // that to 0. For letter codes this mapping is an assumption: the
    // published 介護保険事業所番号 rule only describes all-digit numbers.
    ((10 - sum % 10) % 10) as u8
}

/// The sum of the decimal digits of `n`.
fn digit_sum(mut n: u32) -> u32 {
    let mut sum = 0;
    while n > 0 {
        sum += n % 10;
        n /= 10;
    }
    sum
}

/// Which numbering scheme a [`SiteCode`] belongs to, decided by its third
/// character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SiteCodeKind {
    /// 保険医療機関コード / 保険薬局コード: class `0` 助産所, `1` 医科,
    /// `3` 歯科, `4` 調剤, `5` 老健, `6` 訪問看護.
    InsuranceMedical,
    /// 介護保険事業所番号: class `7`, `8`, `9` or an uppercase letter other
    /// than I, O, Q.
    CareProvider,
    /// A code assigned by this system (class `2`) to a venue that has
    /// neither a medical nor a care code.
    Assigned,
}

impl SiteCodeKind {
    /// The kind for a class character (position 3), if it is one.
    fn of_class(c: char) -> Option<Self> {
        match c {
            '2' => Some(Self::Assigned),
            '0' | '1' | '3'..='6' => Some(Self::InsuranceMedical),
            '7'..='9' => Some(Self::CareProvider),
            'I' | 'O' | 'Q' => None,
            'A'..='Z' => Some(Self::CareProvider),
            _ => None,
        }
    }
}

/// A ten-character site code: the 保険医療機関コード of a clinic or
/// pharmacy, the 介護保険事業所番号 of a care provider, or a code this
/// system assigns to a venue that has neither (mass-vaccination,
/// workplace, health-centre venues).
///
/// Layout (1-based positions):
///
/// | pos  | content                                                     |
/// |------|-------------------------------------------------------------|
/// | 1-2  | prefecture 01-47                                            |
/// | 3    | class: decides the [`SiteCodeKind`]                         |
/// | 4-9  | digits                                                      |
/// | 10   | check digit, [`mod10_w21_check_digit`] of positions 1-9     |
///
/// * **InsuranceMedical** — class `0` 助産所, `1` 医科, `3` 歯科, `4` 調剤,
///   `5` 老健, `6` 訪問看護; the check digit is Luhn over the first nine
///   digits (e.g. `0110113719`, `3618010015`).
/// * **CareProvider** — class `7`, `8`, `9` or an uppercase ASCII letter
///   other than I, O, Q. Letters count A=10 … H=17, J=18 … N=22, P=23,
///   R=24 … Z=32 in the check digit. Because the class sits at an odd
///   position from the right it always has weight 2, so two letters whose
///   doubled values have the same digit sum (e.g. B: 22 → 4 and L: 40 → 4)
///   are not told apart by the check digit.
/// * **Assigned** — class `2`, which neither the medical 点数表 nor the care
///   事業所区分 uses, so an assigned code never collides with a real one;
///   positions 4-9 are a per-prefecture serial 000001-999999 and the check
///   digit is Luhn as for medical codes. Build them with
///   [`SiteCode::assigned`].
///
/// Class `0` is ambiguous: it is 助産所 in the medical scheme and
/// 地域包括支援センター in the care scheme. Both validate identically, and
/// such codes are classified as [`SiteCodeKind::InsuranceMedical`].
///
/// Input is taken exactly: no trimming, no full-width conversion, no
/// lowercase letters. Callers trim and normalise before parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteCode([u8; 10]);

impl SiteCode {
    /// The highest serial of an assigned code.
    pub const MAX_ASSIGNED_SERIAL: u32 = 999_999;

    /// Parses a ten-character site code, verifying prefecture, class,
    /// digits, check digit and (for assigned codes) that the serial is not
    /// zero.
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let c = scan::<10>(s)?;
        let expected = check_digit_of(&[c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]]);
        let found = digit_value(c[9]);
        if found != expected {
            return Err(CodeError::CheckDigit { found, expected });
        }
        check_assigned_serial(&c)?;
        Ok(Self(c))
    }

    /// Builds a code from its first nine characters, appending the check
    /// digit. Positions 1-9 are validated as in [`Self::parse`].
    pub fn with_check_digit(first_nine: &str) -> Result<Self, CodeError> {
        let c = scan::<9>(first_nine)?;
        check_assigned_serial(&c)?;
        Ok(Self::finish(c))
    }

    /// The assigned code for `serial` (1..=999_999) in `prefecture`:
    /// prefecture + `2` + six-digit serial + check digit.
    pub fn assigned(prefecture: PrefectureCode, serial: u32) -> Result<Self, CodeError> {
        if !(1..=Self::MAX_ASSIGNED_SERIAL).contains(&serial) {
            return Err(CodeError::AssignedSerial);
        }
        let p = prefecture.as_str().as_bytes();
        let mut c = [p[0], p[1], b'2', 0, 0, 0, 0, 0, 0];
        let mut n = serial;
        for slot in c[3..].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        Ok(Self::finish(c))
    }

    /// The numbering scheme, decided by position 3.
    pub fn kind(&self) -> SiteCodeKind {
        match self.0[2] {
            b'2' => SiteCodeKind::Assigned,
            b'0' | b'1' | b'3'..=b'6' => SiteCodeKind::InsuranceMedical,
            _ => SiteCodeKind::CareProvider,
        }
    }

    /// The prefecture (positions 1-2).
    pub fn prefecture(&self) -> PrefectureCode {
        PrefectureCode::from_validated_pair(self.0[0], self.0[1])
    }

    /// The serial of an assigned code (positions 4-9), `None` for medical
    /// and care codes.
    pub fn assigned_serial(&self) -> Option<u32> {
        (self.kind() == SiteCodeKind::Assigned)
            .then(|| self.0[3..9].iter().fold(0, |n, &b| n * 10 + u32::from(digit_value(b))))
    }

    /// The ten characters, e.g. `"0110113719"`.
    pub fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }

    /// Appends the check digit to nine validated characters.
    fn finish(c: [u8; 9]) -> Self {
        let check = b'0' + check_digit_of(&c);
        Self([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], check])
    }
}

impl_code_traits!(SiteCode, "site code");

/// Checks the first `N` (9 or 10) characters of a site code: length,
/// digits at every position but 3, a class at position 3, and the
/// prefecture. Returns them as ASCII bytes.
fn scan<const N: usize>(s: &str) -> Result<[u8; N], CodeError> {
    check_len(s, N, "characters")?;
    let mut out = [0u8; N];
    for ((i, c), slot) in s.chars().enumerate().zip(out.iter_mut()) {
        if i == 2 {
            if SiteCodeKind::of_class(c).is_none() {
                return Err(CodeError::SiteClass);
            }
        } else if !c.is_ascii_digit() {
            return Err(CodeError::NotDigit { position: i + 1 });
        }
        // ASCII by the checks above.
        *slot = c as u8;
    }
    PrefectureCode::from_ascii_pair(out[0], out[1])?;
    Ok(out)
}

/// Rejects an assigned code (class `2`) whose serial is `000000`.
fn check_assigned_serial(c: &[u8]) -> Result<(), CodeError> {
    if c[2] == b'2' && c[3..9] == *b"000000" {
        Err(CodeError::AssignedSerial)
    } else {
        Ok(())
    }
}

/// The check-digit value of a validated character: digits 0-9, letters
/// A=10 … Z=32 skipping I, O and Q.
fn char_value(b: u8) -> u8 {
    if b.is_ascii_digit() {
        digit_value(b)
    } else {
        let skipped = u8::from(b > b'I') + u8::from(b > b'O') + u8::from(b > b'Q');
        b - b'A' + 10 - skipped
    }
}

/// The check digit of nine validated characters.
fn check_digit_of(c: &[u8; 9]) -> u8 {
    mod10_w21_check_digit(&c.map(char_value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pref(n: u8) -> PrefectureCode {
        PrefectureCode::from_number(n).unwrap()
    }

    #[test]
    fn letter_values() {
        let expected = [
            ('A', 10),
            ('B', 11),
            ('H', 17),
            ('J', 18),
            ('K', 19),
            ('L', 20),
            ('M', 21),
            ('N', 22),
            ('P', 23),
            ('R', 24),
            ('S', 25),
            ('Z', 32),
        ];
        for (c, v) in expected {
            assert_eq!(char_value(c as u8), v, "{c}");
        }
        let letters: Vec<u8> = (b'A'..=b'Z')
            .filter(|b| !matches!(b, b'I' | b'O' | b'Q'))
            .map(char_value)
            .collect();
        assert_eq!(letters, (10..=32).collect::<Vec<u8>>());
    }

    #[test]
    fn check_digit_is_luhn_for_digits() {
        // 011011371: from the right 1·2, 7·1, 3·2, 1·1, 1·2, 0·1, 1·2, 1·1, 0·2
        // = 2 + 7 + 6 + 1 + 2 + 0 + 2 + 1 + 0 = 21 → (10 − 1) mod 10 = 9.
        assert_eq!(mod10_w21_check_digit(&[0, 1, 1, 0, 1, 1, 3, 7, 1]), 9);
        // Classic Luhn example 7992739871 → 3.
        assert_eq!(mod10_w21_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        // Split digits: 9·2 = 18 contributes 1 + 8.
        assert_eq!(mod10_w21_check_digit(&[9]), 1);
        // Sum ≡ 0 mod 10 gives 0, not 10.
        // 1·2 + 8·1 = 10.
        assert_eq!(mod10_w21_check_digit(&[8, 1]), 0);
        // A letter value with weight 1: 10·1 contributes 1 + 0.
        assert_eq!(mod10_w21_check_digit(&[10, 0]), 9);
    }

    #[test]
    fn real_medical_codes() {
        for (s, p) in [("0110113719", 1), ("3618010015", 36)] {
            let code = SiteCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(code.kind(), SiteCodeKind::InsuranceMedical);
            assert_eq!(code.prefecture().number(), p);
            assert_eq!(code.assigned_serial(), None);
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
            assert_eq!(SiteCode::with_check_digit(&s[..9]), Ok(code));
        }
    }

    #[test]
    fn hand_verified_care_letter_codes() {
        // 13A000000?: from the right 0·2, 0·1, 0·2, 0·1, 0·2, 0·1,
        // A=10·2 = 20 → 2 + 0 = 2, 3·1 = 3, 1·2 = 2; sum 7 → check 3.
        // 27K123456?: 6·2 = 12 → 3, 5·1 = 5, 4·2 = 8, 3·1 = 3, 2·2 = 4,
        // 1·1 = 1, K=19·2 = 38 → 3 + 8 = 11, 7·1 = 7, 2·2 = 4;
        // sum 46 → check 4.
        // 01Z000000?: Z=32·2 = 64 → 6 + 4 = 10, 1·1 = 1, 0·2 = 0;
        // sum 11 → check 9.
        for s in ["13A0000003", "27K1234564", "01Z0000009"] {
            let code = SiteCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(code.kind(), SiteCodeKind::CareProvider);
            assert_eq!(SiteCode::with_check_digit(&s[..9]), Ok(code));
        }
        assert_eq!(
            SiteCode::parse("13A0000004"),
            Err(CodeError::CheckDigit { found: 4, expected: 3 })
        );
    }

    #[test]
    fn every_care_class_builds_and_parses() {
        for class in ('7'..='9').chain('A'..='Z').filter(|c| !"IOQ".contains(*c)) {
            let code = SiteCode::with_check_digit(&format!("40{class}123456")).unwrap();
            assert_eq!(code.kind(), SiteCodeKind::CareProvider, "{class}");
            assert_eq!(SiteCode::parse(code.as_str()), Ok(code));
        }
        for class in ['0', '1', '3', '4', '5', '6'] {
            let code = SiteCode::with_check_digit(&format!("40{class}123456")).unwrap();
            assert_eq!(code.kind(), SiteCodeKind::InsuranceMedical, "{class}");
        }
    }

    #[test]
    fn parse_table() {
        let len = |actual| CodeError::Length {
            expected: 10,
            actual,
            unit: "characters",
        };
        let check = |found, expected| CodeError::CheckDigit { found, expected };
        let cases: &[(&str, CodeError)] = &[
            ("", len(0)),
            ("011011371", len(9)),
            ("01101137190", len(11)),
            (" 0110113719", len(11)),
            ("0110113719 ", len(11)),
            ("0110113718", check(8, 9)),
            ("3618010016", check(6, 5)),
            ("O110113719", CodeError::NotDigit { position: 1 }),
            ("0a10113719", CodeError::NotDigit { position: 2 }),
            ("01101137a9", CodeError::NotDigit { position: 9 }),
            ("011011371X", CodeError::NotDigit { position: 10 }),
            ("011011371９", CodeError::NotDigit { position: 10 }),
            ("01A-000000", CodeError::NotDigit { position: 4 }),
            ("0011013719", CodeError::Prefecture),
            ("4811013719", CodeError::Prefecture),
            ("9911013719", CodeError::Prefecture),
            ("01I0000000", CodeError::SiteClass),
            ("01O0000000", CodeError::SiteClass),
            ("01Q0000000", CodeError::SiteClass),
            ("01a0000000", CodeError::SiteClass),
            ("01k1234564", CodeError::SiteClass),
            ("01-0000000", CodeError::SiteClass),
            ("01 0000000", CodeError::SiteClass),
            ("01Ａ0000000", CodeError::SiteClass),
            // Class 2 with a wrong check digit.
            ("1320000010", check(0, 9)),
            // Class 2 with serial 000000: 0·2 + 1·1 + 2·2 = 5 → check 5.
            ("0120000005", CodeError::AssignedSerial),
            ("0120000000", check(0, 5)),
        ];
        for (input, expected) in cases {
            assert_eq!(SiteCode::parse(input).as_ref(), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn with_check_digit_table() {
        assert_eq!(SiteCode::with_check_digit("011011371").unwrap().as_str(), "0110113719");
        assert_eq!(
            SiteCode::with_check_digit("01101137"),
            Err(CodeError::Length {
                expected: 9,
                actual: 8,
                unit: "characters"
            })
        );
        assert_eq!(
            SiteCode::with_check_digit("0110113719"),
            Err(CodeError::Length {
                expected: 9,
                actual: 10,
                unit: "characters"
            })
        );
        assert_eq!(SiteCode::with_check_digit("481101137"), Err(CodeError::Prefecture));
        assert_eq!(SiteCode::with_check_digit("01I000000"), Err(CodeError::SiteClass));
        assert_eq!(
            SiteCode::with_check_digit("01100000x"),
            Err(CodeError::NotDigit { position: 9 })
        );
        assert_eq!(SiteCode::with_check_digit("012000000"), Err(CodeError::AssignedSerial));
    }

    #[test]
    fn assigned_codes() {
        // 132000001?: 1·2 + 0 + 0 + 0 + 0 + 0 + 2·2 + 3·1 + 1·2 = 11 → 9.
        let code = SiteCode::assigned(pref(13), 1).unwrap();
        assert_eq!(code.as_str(), "1320000019");
        assert_eq!(code.kind(), SiteCodeKind::Assigned);
        assert_eq!(code.assigned_serial(), Some(1));
        assert_eq!(code.prefecture(), pref(13));
        assert_eq!(SiteCode::parse("1320000019"), Ok(code));

        let max = SiteCode::assigned(pref(47), 999_999).unwrap();
        assert_eq!(&max.as_str()[..9], "472999999");
        assert_eq!(max.assigned_serial(), Some(999_999));

        assert_eq!(SiteCode::assigned(pref(1), 0), Err(CodeError::AssignedSerial));
        assert_eq!(SiteCode::assigned(pref(1), 1_000_000), Err(CodeError::AssignedSerial));
    }

    #[test]
    fn class_zero_is_medical() {
        let code = SiteCode::with_check_digit("130123456").unwrap();
        assert_eq!(code.kind(), SiteCodeKind::InsuranceMedical);
    }

    #[test]
    fn serde_round_trip() {
        let code = SiteCode::parse("0110113719").unwrap();
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"0110113719\"");
        assert_eq!(serde_json::from_str::<SiteCode>(&json).unwrap(), code);
        let err = serde_json::from_str::<SiteCode>("\"01I0000000\"").unwrap_err();
        assert!(err.to_string().contains("invalid site code: character 3"));
        assert_eq!(format!("{code:?}"), "SiteCode(\"0110113719\")");
    }

    /// Any valid class character.
    fn class_strategy() -> impl Strategy<Value = char> {
        prop::sample::select(
            ('0'..='9')
                .chain('A'..='Z')
                .filter(|c| !"IOQ".contains(*c))
                .collect::<Vec<_>>(),
        )
    }

    proptest! {
        #[test]
        fn assigned_round_trips(p in 1u8..=47, serial in 1u32..=999_999) {
            let code = SiteCode::assigned(pref(p), serial).unwrap();
            prop_assert_eq!(code.kind(), SiteCodeKind::Assigned);
            prop_assert_eq!(code.as_str().as_bytes()[2], b'2');
            prop_assert_eq!(code.assigned_serial(), Some(serial));
            prop_assert_eq!(code.prefecture().number(), p);
            let back: SiteCode = code.to_string().parse().unwrap();
            prop_assert_eq!(back, code);
            prop_assert_eq!(back.kind(), SiteCodeKind::Assigned);
        }

        #[test]
        fn single_digit_substitution_is_caught(
            p in 1u8..=47,
            class in 0u8..=9,
            rest in "[0-9]{6}",
            pos in 0usize..9,
            delta in 1u8..=9,
        ) {
            prop_assume!(class != 2 || rest != "000000");
            let code = SiteCode::with_check_digit(&format!("{p:02}{class}{rest}")).unwrap();
            let mut bytes = code.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (digit_value(bytes[pos]) + delta) % 10;
            let altered = String::from_utf8(bytes).unwrap();
            let result = SiteCode::parse(&altered);
            prop_assert!(result.is_err(), "{} parsed", altered);
            if pos >= 2 {
                prop_assert!(
                    matches!(result, Err(CodeError::CheckDigit { .. })),
                    "{}: {:?}", altered, result
                );
            }
        }

        #[test]
        fn with_check_digit_always_parses(
            p in 1u8..=47,
            class in class_strategy(),
            rest in "[0-9]{6}",
        ) {
            prop_assume!(class != '2' || rest != "000000");
            let code = SiteCode::with_check_digit(&format!("{p:02}{class}{rest}")).unwrap();
            prop_assert_eq!(SiteCode::parse(code.as_str()), Ok(code));
            prop_assert_eq!(code.kind(), SiteCodeKind::of_class(class).unwrap());
            // Only class 2 is ever Assigned; medical and care codes never are.
            prop_assert_eq!(code.kind() == SiteCodeKind::Assigned, class == '2');
            prop_assert_eq!(code.assigned_serial().is_some(), class == '2');
        }

        #[test]
        fn assigned_never_parses_as_medical_or_care(
            p in 1u8..=47,
            serial in 1u32..=999_999,
            other in class_strategy(),
        ) {
            let code = SiteCode::assigned(pref(p), serial).unwrap();
            let parsed = SiteCode::parse(code.as_str()).unwrap();
            prop_assert_eq!(parsed.kind(), SiteCodeKind::Assigned);
            // No code of another class has the same text.
            prop_assume!(other != '2');
            let digits = &code.as_str()[3..9];
            let real = SiteCode::with_check_digit(&format!("{p:02}{other}{digits}")).unwrap();
            prop_assert_ne!(real.kind(), SiteCodeKind::Assigned);
            prop_assert_ne!(real, code);
        }
    }
}
