//! Evaluation end to end on a tiny random model: the report's shape and counts (its replies
//! are noise, so the checks themselves may pass or fail), greedy determinism, and the
//! `mimir-train eval` command's JSON report.

use std::path::Path;
use std::process::Command;

use mimir::engine::clock::SystemClock;
use mimir::engine::generate::StopReason;
use mimir::engine::generation_config::GenerationConfig;
use mimir::tools::ToolCall;
use mimir::tutor::{ActionKind, ActionSource, Tutor};
use mimir_train::eval::{
    evaluate, parse_now, parse_rubric, EvalOptions, EvalReport, RunInfo, ToneConfig, TutorPlanning,
    TONE_RULES,
};
use mimir_train::session::open_session;
use mimir_train::tiny::{write_tiny, GgufType, TinySpec};

mod support;
use support::vocab_gguf;

const RUBRIC: &str = concat!(
    r#"{"id": "mult", "prompt": "What is 7 times 8?", "expect_all": ["\\b56\\b", "."], "forbid": ["\\b54\\b"]}"#,
    "\n",
    r#"{"id": "notes", "prompt": "Where does respiration happen?", "context": "Mitochondria.", "expect_any": ["mitochondri", "cell"]}"#,
    "\n",
    r#"{"id": "hi", "prompt": "Hello!", "forbid": ["ChatGPT"]}"#,
    "\n",
);

/// A tiny Phi-3 GGUF (F32) with the real Phi-3 vocabulary, written into `dir`.
fn tiny_model(dir: &Path) -> std::path::PathBuf {
    let files = write_tiny(&TinySpec::phi3(), dir, Some(&vocab_gguf())).unwrap();
    files.gguf(GgufType::F32).unwrap().to_owned()
}

fn options(max_tokens: usize) -> EvalOptions {
    EvalOptions {
        generation: EvalOptions::greedy(&GenerationConfig {
            max_tokens,
            context_length: 512,
            ..GenerationConfig::default()
        }),
        system: "You are Mimir.".to_owned(),
        tone: ToneConfig::default(),
    }
}

#[test]
fn report_on_a_tiny_model_has_every_check_and_consistent_counts() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let items = parse_rubric(RUBRIC, Path::new("rubric.jsonl")).unwrap();
    let mut session = open_session(&model, None, None, 512).unwrap();
    let mut seen = Vec::new();
    let results = evaluate(
        &mut session,
        &items,
        &options(6),
        None,
        &SystemClock::default(),
        &mut |r| seen.push(r.id.clone()),
    )
    .unwrap();
    assert_eq!(seen, ["mult", "notes", "hi"]);
    // Greedy decoding: a second run gives the same replies.
    let again = evaluate(
        &mut session,
        &items,
        &options(6),
        None,
        &SystemClock::default(),
        &mut |_| {},
    )
    .unwrap();
    let replies = |r: &[mimir_train::eval::ItemResult]| -> Vec<String> {
        r.iter().map(|i| i.reply.clone()).collect()
    };
    assert_eq!(replies(&results), replies(&again));

    let run = RunInfo {
        model: model.display().to_string(),
        adapter: None,
        rubric: "rubric.jsonl".to_owned(),
        planned: 3,
        decoding: "greedy".to_owned(),
        max_tokens: 6,
        tutor_now: None,
        seconds: 0.0,
    };
    let report = EvalReport::new(run, results);
    let kinds: Vec<Vec<&str>> = report
        .items
        .iter()
        .map(|i| i.rubric.iter().map(|c| c.kind.as_str()).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec!["expect_all", "expect_all", "forbid"],
            vec!["expect_any"],
            vec!["forbid"]
        ]
    );
    for item in &report.items {
        let rules: Vec<&str> = item.tone.iter().map(|c| c.rule.as_str()).collect();
        assert_eq!(rules, TONE_RULES);
        assert!(item.generated_tokens <= 6);
        let capped = item.stop == StopReason::MaxTokens;
        let truncated = item
            .tone
            .iter()
            .find(|c| c.rule == "not_truncated")
            .unwrap();
        assert_eq!(truncated.passed, !capped);
    }
    assert_eq!(report.items[1].context.as_deref(), Some("Mitochondria."));
    assert_eq!(report.checks.total, 5);
    assert_eq!(report.tone.total, 3 * TONE_RULES.len());
    assert_eq!(report.prompts.total, 3);
    let passed_rubric = report
        .items
        .iter()
        .flat_map(|i| &i.rubric)
        .filter(|c| c.passed)
        .count();
    assert_eq!(report.checks.passed, passed_rubric);
    assert_eq!(
        report.prompts.passed,
        report.items.iter().filter(|i| i.passed()).count()
    );
    assert_eq!(
        report.capped,
        report
            .items
            .iter()
            .filter(|i| i.stop == StopReason::MaxTokens)
            .count()
    );
    assert_eq!(report.by_check["expect_all"].total, 2);
    assert_eq!(report.by_check["forbid"].total, 2);
    assert_eq!(report.by_check["tone:no_emoji"].total, 3);
    assert_eq!(report.by_check.len(), 3 + TONE_RULES.len());
    let table = report.table();
    assert!(table.contains("rubric checks"), "{table}");
    for item in report.items.iter().filter(|i| !i.passed()) {
        assert!(table.contains(&format!("[{}]", item.id)), "{table}");
    }
    // The JSON reads back (floats aside, which JSON may round by an ulp).
    let parsed: EvalReport = serde_json::from_str(&report.to_json()).unwrap();
    let verdicts = |r: &EvalReport| -> Vec<(String, String, Vec<bool>, Vec<bool>)> {
        r.items
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    i.reply.clone(),
                    i.rubric.iter().map(|c| c.passed).collect(),
                    i.tone.iter().map(|c| c.passed).collect(),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&parsed), verdicts(&report));
    assert_eq!(
        (parsed.checks.passed, parsed.tone.passed, parsed.capped),
        (report.checks.passed, report.tone.passed, report.capped)
    );
}

#[test]
fn tutor_plans_every_turn_and_the_report_counts_content_and_tone_apart() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let items = parse_rubric(RUBRIC, Path::new("rubric.jsonl")).unwrap();
    let mut session = open_session(&model, None, None, 512).unwrap();
    let mut planning = TutorPlanning {
        tutor: Tutor::new(&mut session).unwrap(),
        now: parse_now("2026-11-23T18:00", "en").unwrap(),
    };
    let results = evaluate(
        &mut session,
        &items,
        &options(6),
        Some(&mut planning),
        &SystemClock::default(),
        &mut |_| {},
    )
    .unwrap();
    // Rules route the obvious cases whatever the model's weights: the product goes to the
    // calculator, the greeting is a greeting.
    let mult = results[0].turn.as_ref().unwrap();
    assert_eq!(mult.action.as_ref().unwrap().kind, ActionKind::Calculate);
    assert_eq!(mult.source, Some(ActionSource::Rule));
    let tool = mult.tool.as_ref().unwrap();
    assert!(matches!(tool.call, ToolCall::Calculator { .. }));
    assert_eq!((tool.ok, tool.text.as_str()), (true, "7*8 = 56"));
    let hi = results[2].turn.as_ref().unwrap();
    assert_eq!(hi.action.as_ref().unwrap().kind, ActionKind::Greeting);
    assert!(hi.tool.is_none());
    // The model classifies the rest: an action, or the reason planning failed.
    let notes = results[1].turn.as_ref().unwrap();
    assert_ne!(notes.action.is_some(), notes.error.is_some(), "{notes:?}");

    let run = RunInfo {
        model: model.display().to_string(),
        adapter: None,
        rubric: "rubric.jsonl".to_owned(),
        planned: 3,
        decoding: "greedy".to_owned(),
        max_tokens: 6,
        tutor_now: Some("2026-11-23T18:00 en".to_owned()),
        seconds: 0.0,
    };
    let report = EvalReport::new(run, results);
    assert_eq!(report.checks.total, 5);
    assert_eq!(report.all_checks.total, 5 + 3 * TONE_RULES.len());
    assert_eq!(
        report.all_checks.passed,
        report.checks.passed + report.tone.passed
    );
    let stopped = |reason| report.items.iter().filter(|i| i.stop == reason).count();
    assert_eq!(report.capped, stopped(StopReason::MaxTokens));
    assert_eq!(report.looped, stopped(StopReason::Repetition));
    let table = report.table();
    assert!(table.contains("all checks (rubric + tone)"), "{table}");
    assert!(
        table.contains("[mult] calculate / math (rule); calculator: 7*8 = 56"),
        "{table}"
    );
    let parsed: EvalReport = serde_json::from_str(&report.to_json()).unwrap();
    let turns = |r: &EvalReport| -> Vec<_> { r.items.iter().map(|i| i.turn.clone()).collect() };
    assert_eq!(turns(&parsed), turns(&report));
    assert_eq!(parsed.all_checks.passed, report.all_checks.passed);
}

#[test]
fn eval_command_writes_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let rubric = dir.path().join("rubric.jsonl");
    std::fs::write(&rubric, RUBRIC).unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("eval")
        .arg("--model")
        .arg(&model)
        .arg("--rubric")
        .arg(&rubric)
        .args(["--max-tokens", "3", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("[3/3] hi:"), "{stderr}");
    let report: EvalReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.items.len(), 3);
    assert_eq!(report.run.max_tokens, 3);
    assert_eq!(report.run.planned, 3);
    assert_eq!(report.run.decoding, "greedy");
    assert!(report.items.iter().all(|i| i.generated_tokens <= 3));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tone rules"), "{stdout}");
    assert!(report.items.iter().all(|i| i.turn.is_none()));
    assert_eq!(report.run.tutor_now, None);

    // With --tutor each item records its turn, and the run the date the tools were given.
    let output = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("eval")
        .arg("--model")
        .arg(&model)
        .arg("--rubric")
        .arg(&rubric)
        .args(["--max-tokens", "3", "--tutor", "--now", "2026-11-23T18:00"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("mult: ") && stderr.contains("calculator: 7*8 = 56"),
        "{stderr}"
    );
    let report: EvalReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.items.iter().all(|i| i.turn.is_some()));
    assert_eq!(report.run.tutor_now.as_deref(), Some("2026-11-23T18:00 en"));
    let output = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("eval")
        .arg("--model")
        .arg(&model)
        .arg("--rubric")
        .arg(&rubric)
        .args(["--tutor", "--now", "2026-02-30T10:00"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2026-02-30T10:00"), "{stderr}");

    // A rubric error names the file and line.
    std::fs::write(
        &rubric,
        "{\"id\": \"x\", \"prompt\": \"p\", \"forbid\": [\"(\"]}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("eval")
        .arg("--model")
        .arg(&model)
        .arg("--rubric")
        .arg(&rubric)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rubric.jsonl:1: item \"x\": forbid pattern"),
        "{stderr}"
    );
}

#[test]
fn committed_reports_read_back_consistently() {
    for name in [
        "smollm2-135m-instruct-before.json",
        "smollm2-135m-instruct-tutor.json",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/reports")
            .join(name);
        let report: EvalReport =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(report.items.len(), report.run.planned, "{name}");
        let again = EvalReport::new(report.run.clone(), report.items.clone());
        assert_eq!(
            (
                again.checks.passed,
                again.checks.total,
                again.prompts.passed,
                again.tone.passed,
                again.capped
            ),
            (
                report.checks.passed,
                report.checks.total,
                report.prompts.passed,
                report.tone.passed,
                report.capped
            ),
            "{name}"
        );
        let tutor = report.run.tutor_now.is_some();
        assert!(
            report.items.iter().all(|i| i.turn.is_some() == tutor),
            "{name}"
        );
    }
}
