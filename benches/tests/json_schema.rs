//! The `slowloris` command as a product: the reports it writes match the
//! published schema (`schema/slowloris.v1.schema.json`), every key they
//! carry is described there, its exit status says what the report says,
//! and each mode asks the target for the path its flag names.
//! The tests run one at a time: each is a timed attack, and on a shared
//! machine two at once would time each other.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

const HEADER: Duration = Duration::from_millis(300);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/slowloris.v1.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("the schema ships with the crate");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// Every way `report` breaks the schema, one line each.
fn schema_errors(report: &Value) -> Vec<String> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid schema");
    validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The schema node a `$ref` (`#/$defs/NAME`) or a nullable `oneOf` stands
/// for, given the value it describes.
fn resolve<'a>(root: &'a Value, node: &'a Value, value: &Value) -> &'a Value {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $defs refs only");
        return resolve(root, &root["$defs"][name], value);
    }
    if let Some(branches) = node.get("oneOf").and_then(Value::as_array) {
        let wanted = if value.is_null() { "null" } else { "" };
        let branch = branches
            .iter()
            .find(|b| (b["type"] == "null") == (wanted == "null"))
            .expect("a nullable oneOf has a null branch and one other");
        return resolve(root, branch, value);
    }
    node
}

/// Keys the report carries that the schema does not describe. The schema
/// lets unknown keys through (new keys may appear within a format), so
/// validation alone would not notice a key added to the report and not to
/// the schema.
fn undescribed_keys(root: &Value, node: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let node = resolve(root, node, value);
    match value {
        Value::Object(map) => {
            let props = node.get("properties");
            for (key, v) in map {
                match props.and_then(|p| p.get(key)) {
                    Some(child) => undescribed_keys(root, child, v, &format!("{at}/{key}"), out),
                    None => out.push(format!("{at}/{key}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.get("items") {
                for (i, v) in items.iter().enumerate() {
                    undescribed_keys(root, item, v, &format!("{at}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

/// Checks `report` against the schema both ways: it validates, and it
/// carries nothing the schema leaves out.
fn assert_matches_schema(report: &Value) {
    let errors = schema_errors(report);
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
    let root = schema();
    let mut extra = Vec::new();
    undescribed_keys(&root, &root, report, "", &mut extra);
    assert!(
        extra.is_empty(),
        "keys missing from schema/slowloris.v1.schema.json: {extra:?}"
    );
}

/// A file for the JSON report, removed when dropped.
struct TempJson(PathBuf);

impl TempJson {
    fn new(test: &str) -> TempJson {
        TempJson(std::env::temp_dir().join(format!(
            "ringwall-bench-schema-{test}-{}.json",
            std::process::id()
        )))
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }

    fn parse(&self) -> Value {
        let text = std::fs::read_to_string(&self.0).expect("the report was written");
        serde_json::from_str(&text).expect("the report is JSON")
    }
}

impl Drop for TempJson {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn harness(target: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringwall-bench"))
        .args(["slowloris", "--target", &target.to_string()])
        .args(["--slack", "500ms", "--open-over", "50ms"])
        .args(args)
        .output()
        .unwrap()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The exit status the report's own verdict calls for.
fn status_for(report: &Value) -> i32 {
    match report["passed"].as_bool().expect("passed is a boolean") {
        true => 0,
        false => 1,
    }
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema["properties"]["format"]["const"],
        ringwall_bench::json_report::FORMAT
    );
    jsonschema::meta::validate(&schema).expect("valid against its metaschema");
}

#[test]
fn a_passing_report_with_legit_load_matches_the_schema() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let json = TempJson::new("pass");
    let out = harness(
        server.addr,
        &[
            "--expect-header-timeout",
            "300ms",
            "--expect-idle-timeout",
            "5s",
            "--modes",
            "slowloris,idle",
            "--connections",
            "20",
            "--idle-hold",
            "600ms",
            "--legit-connections",
            "2",
            "--legit-expect",
            "hello",
            "--json",
            json.arg(),
        ],
    );
    let report = json.parse();
    assert_eq!(report["passed"], true, "{}", output_text(&out));
    assert_eq!(out.status.code(), Some(status_for(&report)));
    assert!(report["modes"][0]["legit"].is_object(), "{report:#}");
    assert_matches_schema(&report);
}

#[test]
fn a_failing_slow_read_report_matches_the_schema() {
    let _serial = serial();
    // Closes with a FIN behind 4 MiB it cannot send: with
    // --require-reset-slow-read a failure, and a report with every
    // slow-read figure filled in.
    let server = common::spawn(
        Duration::from_secs(10),
        common::stall_then_close(Duration::from_millis(300), false),
    );
    let json = TempJson::new("slow-read");
    let out = harness(
        server.addr,
        &[
            "--expect-header-timeout",
            "1s",
            "--expect-write-timeout",
            "300ms",
            "--modes",
            "slow-read",
            "--slow-read-bytes",
            "4194304",
            "--connections",
            "4",
            "--legit-connections",
            "0",
            "--require-reset-slow-read",
            "--json",
            json.arg(),
        ],
    );
    let report = json.parse();
    assert_eq!(report["passed"], false, "{}", output_text(&out));
    assert_eq!(out.status.code(), Some(status_for(&report)));
    let slow_read = &report["modes"][0]["slow_read"];
    assert_eq!(
        slow_read["connections"].as_array().map(Vec::len),
        Some(4),
        "{report:#}"
    );
    assert_matches_schema(&report);
}

#[test]
fn the_schema_rejects_a_report_that_breaks_it() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::deadline_server(HEADER, Duration::from_secs(5)),
    );
    let json = TempJson::new("broken");
    let out = harness(
        server.addr,
        &[
            "--expect-header-timeout",
            "300ms",
            "--modes",
            "slowloris",
            "--connections",
            "4",
            "--legit-connections",
            "0",
            "--json",
            json.arg(),
        ],
    );
    let report = json.parse();
    assert!(schema_errors(&report).is_empty(), "{}", output_text(&out));
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut r = report.clone();
        edit(&mut r);
        schema_errors(&r)
    };
    assert!(!broken(&|r| r["verdict"] = "maybe".into()).is_empty());
    assert!(!broken(&|r| r["format"] = "ringwall-bench.slowloris.v2".into()).is_empty());
    assert!(!broken(&|r| r["modes"][0]["counts"]["hangs"] = (-1).into()).is_empty());
    assert!(!broken(&|r| {
        r["modes"][0].as_object_mut().unwrap().remove("overshoot");
    })
    .is_empty());
    // A key the schema does not know passes validation (new keys may appear
    // within a format) but not the test's own check.
    let mut extra = report.clone();
    extra["modes"][0]["counts"]["surprise"] = 1.into();
    assert!(schema_errors(&extra).is_empty());
    let root = schema();
    let mut found = Vec::new();
    undescribed_keys(&root, &root, &extra, "", &mut found);
    assert_eq!(found, ["/modes/0/counts/surprise"]);
}

/// Records the request line of each connection, then holds it for `hold`
/// and closes it, so every mode ends soon whatever it asked for.
fn recording_server(
    lines: Arc<Mutex<Vec<String>>>,
    hold: Duration,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut recorded = false;
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while Instant::now() < accepted + hold && !stop.load(Ordering::SeqCst) {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) if !recorded => {
                    head.extend_from_slice(&chunk[..n]);
                    if let Some(end) = common::find(&head, b"\r\n") {
                        let line = String::from_utf8_lossy(&head[..end]).into_owned();
                        lines.lock().unwrap().push(line);
                        recorded = true;
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }
}

#[test]
fn each_mode_asks_for_the_path_its_flag_names() {
    let _serial = serial();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let server = common::spawn(
        Duration::from_secs(15),
        recording_server(Arc::clone(&lines), Duration::from_millis(300)),
    );
    let json = TempJson::new("paths");
    let out = harness(
        server.addr,
        &[
            "--expect-header-timeout",
            "300ms",
            "--expect-body-timeout",
            "300ms",
            "--expect-write-timeout",
            "300ms",
            "--modes",
            "slowloris,slow-body,slow-read",
            "--connections",
            "2",
            "--legit-connections",
            "0",
            "--slowloris-path",
            "/drip",
            "--slow-body-path",
            "/upload",
            "--slow-read-path",
            "/big?size={bytes}",
            "--slow-read-bytes",
            "4194304",
            "--json",
            json.arg(),
        ],
    );
    // The recording server answers nothing, so the verdicts are beside the
    // point; the harness must have run.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        output_text(&out)
    );
    let mut seen = lines.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "GET /big?size=4194304 HTTP/1.1",
            "GET /drip HTTP/1.1",
            "POST /upload HTTP/1.1",
        ],
        "{}",
        output_text(&out)
    );
    let report = json.parse();
    let paths = &report["settings"]["paths"];
    assert_eq!(paths["slow_body"], "/upload");
    assert_eq!(paths["slow_read"], "/big?size={bytes}");
    assert_matches_schema(&report);
}

#[test]
fn a_path_that_is_not_origin_form_cannot_run() {
    // Refused before any connect: no server needed.
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for flag in ["--slow-body-path", "--slow-read-path", "--idle-path"] {
        let out = harness(addr, &["--expect-header-timeout", "1s", flag, "echo me"]);
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}
