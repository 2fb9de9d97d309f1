//! The real `vsys` binary: `token issue`, `schema`, `sites import`, and `serve` (first start in
//! an empty directory, JSON logs, the demo, graceful shutdown on SIGTERM).
//!
//! The binary lives next to this test binary's `deps/` directory; it is (re)built once per test
//! run with `cargo build -p api --bin vsys` into the same target directory, so it is never
//! stale (a no-op when it is up to date).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tests::{TEST_SECRET, TestApp, TestDb, csv_header, csv_line, tokyo_clinic_code};

/// Environment the binary reads; cleared so the tests do not depend on the caller's shell.
const VSYS_ENV: [&str; 12] = [
    "DATABASE_URL",
    "REDIS_URL",
    "VSYS_JWT_SECRET",
    "VSYS_JWKS",
    "VSYS_JWT_ISSUER",
    "VSYS_JWT_AUDIENCE",
    "VSYS_LISTEN",
    "VSYS_LOG_FORMAT",
    "VSYS_MAX_BODY_BYTES",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

fn vsys_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target>/<profile>/deps/api-<hash>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("<target>/<profile>")
            .to_path_buf();
        let target = profile_dir.parent().expect("<target>");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "--quiet", "-p", "api", "--bin", "vsys"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(workspace);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build -p api failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join(format!("vsys{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

/// `vsys` with a clean environment and no stdin.
fn vsys() -> Command {
    let mut c = Command::new(vsys_bin());
    for var in VSYS_ENV {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("run vsys");
    let stdout = String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

const ME: &str = "{ me { role scope scopeName } }";

#[tokio::test]
async fn token_issue_prints_a_token_the_server_accepts() {
    let (out, stdout, stderr) = run(vsys()
        .args(["token", "issue", "--role", "MUNICIPALITY", "--scope", "131016"])
        .env("VSYS_JWT_SECRET", TEST_SECRET));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.ends_with('\n') && stdout.lines().count() == 1, "{stdout:?}");
    let token = stdout.trim_end();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert!(
        parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    );

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["vsys"]);
    validation.set_issuer(&["vsys"]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_SECRET.as_bytes()),
        &validation,
    )
    .expect("signed with VSYS_JWT_SECRET")
    .claims;
    assert_eq!(
        (&claims["role"], &claims["scope"]),
        (&json!("MUNICIPALITY"), &json!("131016"))
    );
    assert_eq!(
        claims["exp"].as_i64().zip(claims["iat"].as_i64()).map(|(e, i)| e - i),
        Some(12 * 3600)
    );

    let app = TestApp::spawn().await;
    assert_eq!(
        app.ok(token, ME, json!({})).await["me"],
        json!({ "role": "MUNICIPALITY", "scope": "131016", "scopeName": "千代田区" })
    );

    // Without VSYS_JWT_SECRET the token is signed with the development secret: not valid here.
    let (out, dev, _) = run(vsys().args(["token", "issue", "--role", "NATIONAL"]));
    assert!(out.status.success());
    let (status, _) = app.post(Some(dev.trim_end()), ME, json!({})).await;
    assert_eq!(status, 401);

    let (out, stdout, stderr) = run(vsys().args(["token", "issue", "--role", "MUNICIPALITY", "--scope", "999999"]));
    assert!(!out.status.success());
    assert_eq!(stdout, "", "no token for a bad scope");
    assert!(
        stderr.contains("scope") && stderr.contains("MUNICIPALITY") && stderr.contains("prefecture"),
        "{stderr}"
    );
    let (out, stdout, stderr) = run(vsys().args(["token", "issue", "--role", "EMPEROR"]));
    assert!(!out.status.success() && stdout.is_empty());
    assert!(stderr.contains("unknown role"), "{stderr}");
}

#[test]
fn schema_prints_the_committed_sdl() {
    let (out, stdout, stderr) = run(vsys().arg("schema"));
    assert!(out.status.success(), "{stderr}");
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql"))
        .expect("schema.graphql");
    assert!(stdout == committed, "`vsys schema` differs from schema.graphql");
}

#[tokio::test]
async fn sites_import_reports_rejections_and_is_idempotent() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sites.csv");
    let report = dir.path().join("rejected.csv");
    let (a, b) = (tokyo_clinic_code(1), tokyo_clinic_code(2));
    let csv = format!(
        "{}\n{}\n{}\n{}\n",
        csv_header(),
        csv_line(&a, &[]),
        csv_line(&tokyo_clinic_code(3), &[("phone", "12-34")]),
        csv_line(&b, &[("name", "みどり小児科")]),
    );
    std::fs::write(&file, csv).expect("write csv");
    let import = || {
        let mut c = vsys();
        c.args(["sites", "import"])
            .arg(&file)
            .arg("--report")
            .arg(&report)
            .env("DATABASE_URL", &db.url);
        c
    };

    let (out, stdout, stderr) = run(&mut import());
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "inserted 2, updated 0, unchanged 0, rejected 1 (see {})\n",
            report.display()
        )
    );
    let written = std::fs::read_to_string(&report).expect("report");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 2, "{written}");
    assert_eq!(lines[0], "line,column,reason");
    assert!(lines[1].starts_with("3,phone,"), "{written}");

    let (out, stdout, stderr) = run(&mut import());
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("inserted 0, updated 0, unchanged 2, rejected 1"),
        "{stdout}"
    );

    // The server sees what the command imported, recorded as the system's import.
    let app = TestApp::spawn_on(db).await;
    let n = tests::token("NATIONAL", None);
    let d = app
        .ok(
            &n,
            "{ sites(first: 10) { totalCount edges { node { code version history { action actor } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["sites"]["totalCount"], 2);
    let nodes: Vec<&Value> = d["sites"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes[0]["code"], a.as_str());
    assert_eq!(nodes[1]["code"], b.as_str());
    for node in nodes {
        assert_eq!(node["version"], 1);
        assert_eq!(
            node["history"],
            json!([{ "action": "REGISTERED", "actor": "SYSTEM (import)" }])
        );
    }
}

#[test]
fn sites_import_refuses_missing_and_oversized_files_before_touching_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_file = dir.path().join("never.db");
    let url = format!("sqlite://{}?mode=rwc", db_file.display());
    let report = dir.path().join("report.csv");

    let missing = dir.path().join("no-such-file.csv");
    let (out, stdout, stderr) = run(vsys()
        .args(["sites", "import"])
        .arg(&missing)
        .arg("--report")
        .arg(&report)
        .env("DATABASE_URL", &url));
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("cannot read") && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );

    let big = dir.path().join("huge.csv");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(api::cli::MAX_IMPORT_FILE_BYTES + 1).expect("sparse file");
    drop(f);
    let (out, stdout, stderr) = run(vsys()
        .args(["sites", "import"])
        .arg(&big)
        .arg("--report")
        .arg(&report)
        .env("DATABASE_URL", &url));
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("limit") && stderr.contains(&(api::cli::MAX_IMPORT_FILE_BYTES + 1).to_string()),
        "{stderr}"
    );

    assert!(!db_file.exists(), "the database was opened");
    assert!(!report.exists(), "a report was written");
}

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl std::io::Read + Send + 'static) -> (Lines, std::thread::JoinHandle<()>) {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines").push(line);
        }
    });
    (lines, reader)
}

/// A `vsys serve` child process; killed (by its pid) if a test fails before stopping it.
struct Server {
    child: Child,
    base: String,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut cmd = vsys();
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .env("VSYS_LISTEN", &listen)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn vsys serve");
        let (stdout, out_reader) = collect(child.stdout.take().expect("stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("stderr"));
        Server {
            child,
            base: format!("http://{listen}"),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("lines").clone()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("lines").clone()
    }

    /// Polls `done` until it holds; fails if the deadline passes or the process exits.
    async fn wait_for(&mut self, what: &str, mut done: impl AsyncFnMut(&Server) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if done(&*self).await {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "vsys exited ({status}) before {what}; stderr:\n{}",
                    self.stderr().join("\n")
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; stdout:\n{}\nstderr:\n{}",
                self.stdout().join("\n"),
                self.stderr().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.base);
        self.wait_for("/healthz", async |_| match client.get(&url).send().await {
            Ok(r) => r.status().as_u16() == 200 && r.text().await.is_ok_and(|t| t == "ok"),
            Err(_) => false,
        })
        .await;
    }

    async fn graphql(&self, token: &str, query: &str, variables: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request");
        (resp.status().as_u16(), resp.json().await.expect("JSON"))
    }

    /// Sends SIGTERM and waits for the exit; all output has been read when this returns.
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "vsys did not exit within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for r in self.readers.drain(..) {
            r.join().expect("reader");
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn serve_starts_in_an_empty_directory_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &[], &[]);
    server.wait_healthy().await;
    assert!(
        dir.path().join("vsys.db").is_file(),
        "the default SQLite file is created"
    );

    let graphiql = format!("{}/graphql", server.base);
    server
        .wait_for("the GraphiQL line", async |s| {
            s.stdout()
                .iter()
                .any(|l| l.contains("GraphiQL") && l.contains(&graphiql))
        })
        .await;
    server
        .wait_for("the development-secret warning", async |s| {
            s.stderr().iter().any(|l| l.contains("VSYS_JWT_SECRET is not set"))
        })
        .await;

    // Without a configured secret it accepts development tokens.
    let dev = api::auth::issue_hs256(
        api::auth::DEV_JWT_SECRET,
        "vsys",
        "vsys",
        "dev",
        "PREFECTURE",
        Some("13"),
        chrono::Duration::hours(1),
    )
    .expect("token");
    let (status, body) = server.graphql(&dev, ME, json!({})).await;
    assert_eq!(
        (status, &body["data"]["me"]["scopeName"]),
        (200, &json!("東京都")),
        "{body}"
    );

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    assert!(
        reqwest::get(format!("{}/healthz", server.base)).await.is_err(),
        "nothing listens after the exit"
    );
}

#[tokio::test]
async fn serve_json_logs_are_json_and_carry_no_names_or_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(
        dir.path(),
        &[],
        &[
            ("VSYS_LOG_FORMAT", "json"),
            ("VSYS_JWT_SECRET", TEST_SECRET),
            ("RUST_LOG", "info,api=debug,domain=debug"),
        ],
    );
    server.wait_healthy().await;

    let person = "山田太郎";
    let t = tests::token("MUNICIPALITY", Some("131016"));
    let mut input = tests::venue_input("131016", &format!("{person}記念会場"));
    input["nameKana"] = json!("ﾔﾏﾀﾞﾀﾛｳｷﾈﾝｶｲｼﾞｮｳ");
    let vars = json!({ "input": input });
    let (status, body) = server.graphql(&t, tests::REGISTER, vars).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["registerSite"]["name"],
        format!("{person}記念会場"),
        "{body}"
    );
    // Refused requests carrying the name, and one with a forged token.
    input["phone"] = json!("bad");
    let (_, body) = server.graphql(&t, tests::REGISTER, json!({ "input": input })).await;
    assert_eq!(tests::error_of(&body).0, "BAD_USER_INPUT");
    let inline = format!("mutation {{ registerSite(input: {{ name: \"{person}\" }}) {{ code }} }}");
    let (_, body) = server.graphql(&t, &inline, json!({})).await;
    assert_eq!(tests::error_of(&body).0, "BAD_USER_INPUT");
    let forged = format!("{}x", &t[..t.len() - 1]);
    let (status, _) = server.graphql(&forged, ME, json!({})).await;
    assert_eq!(status, 401);

    assert_eq!(server.terminate().await.code(), Some(0));
    let lines: Vec<String> = server.stderr().into_iter().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no logs at all");
    let mut messages = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        messages.push(v["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(messages.iter().any(|m| m.contains("listening")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m == "http request"),
        "request logs are on: {messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("shutting down")), "{messages:?}");
    let all = lines.join("\n");
    assert!(!all.contains(person), "a name reached the logs:\n{all}");
    assert!(!all.contains("ﾔﾏﾀﾞ"), "a kana name reached the logs:\n{all}");
    for part in t.split('.').chain(forged.split('.')) {
        assert!(!all.contains(part), "a token reached the logs:\n{all}");
    }
    assert!(!all.contains(TEST_SECRET), "the secret reached the logs");
}

#[tokio::test]
async fn serve_demo_prints_a_token_per_role_and_serves_demo_sites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(dir.path(), &["--demo"], &[]);
    let token_lines = |s: &Server| -> Vec<(String, String)> {
        let out = s.stdout();
        let Some(start) = out.iter().position(|l| l.starts_with("development tokens")) else {
            return Vec::new();
        };
        out[start + 1..]
            .iter()
            .filter(|l| l.starts_with("  "))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let role = words.next()?.to_owned();
                let token = words.last()?.to_owned();
                Some((role, token))
            })
            .collect()
    };
    server
        .wait_for("7 token lines", async |s| token_lines(s).len() == 7)
        .await;
    let tokens = token_lines(&server);
    let roles: Vec<&str> = tokens.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        roles,
        [
            "NATIONAL",
            "PREFECTURE",
            "MUNICIPALITY",
            "SITE",
            "WHOLESALER",
            "MEDICAL_ASSOCIATION",
            "FEDERATION"
        ]
    );
    assert!(tokens.iter().all(|(_, t)| t.split('.').count() == 3), "{tokens:?}");
    assert!(
        server.stdout().iter().any(|l| l.starts_with("demo: registered")),
        "{:?}",
        server.stdout()
    );

    let count = "{ sites(first: 100) { totalCount } }";
    let national = &tokens[0].1;
    let (status, body) = server.graphql(national, count, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let all = body["data"]["sites"]["totalCount"].as_u64().expect("count");
    assert!(all >= 25, "{body}");
    // Every printed token works, each within its scope.
    for (role, t) in &tokens {
        let (status, body) = server
            .graphql(t, "{ me { role } sites(first: 100) { totalCount } }", json!({}))
            .await;
        assert_eq!(status, 200, "{role}: {body}");
        assert_eq!(body["data"]["me"]["role"], role.as_str(), "{body}");
        let n = body["data"]["sites"]["totalCount"].as_u64().expect("count");
        assert!(n >= 1 && (role == "NATIONAL" || n < all), "{role} sees {n} of {all}");
    }
    assert_eq!(server.terminate().await.code(), Some(0));
}
