//! The data sources (Mimir CSV, JSONL, URL against the local hub, synthetic), malformed input,
//! the split and its counts, the shipped dataset and rubric, and `mimir-train data` itself.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mimir::conversation::DEFAULT_SYSTEM_PROMPT;
use mimir::engine::chat::Role;
use mimir::engine::generate::StopReason;
use mimir_train::data::{
    eval_count, generate_synthetic, load_jsonl, load_mimir_csv, load_url, parse_jsonl,
    parse_mimir_csv, prepare, synthetic, write_jsonl, DataError, Example, Kind, Loaded,
    SplitOptions,
};
use mimir_train::eval::{check_tone, load_rubric, ToneConfig};
use mimir_train::hub::serve_hub;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SYSTEM: &str = "You are Mimir.";

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn lines_of(loaded: &Loaded) -> Vec<String> {
    loaded.malformed.iter().map(ToString::to_string).collect()
}

fn user(example: &Example) -> &str {
    &example
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .unwrap()
        .content
}

fn assistant(example: &Example) -> &str {
    &example
        .messages
        .iter()
        .find(|m| m.role == Role::Assistant)
        .unwrap()
        .content
}

/// Rules every ideal reply must keep, whatever its source.
fn assert_tone(example: &Example) {
    let failed: Vec<String> = check_tone(
        assistant(example),
        StopReason::EndOfTurn,
        &ToneConfig::default(),
    )
    .into_iter()
    .filter(|c| !c.passed)
    .map(|c| format!("{}: {}", c.rule, c.detail))
    .collect();
    assert!(failed.is_empty(), "{:?}: {failed:?}", user(example));
}

#[test]
fn shipped_csv_is_complete_and_keeps_the_tone_rules() {
    let loaded = load_mimir_csv(&data_file("mimir_tutoring.csv"), DEFAULT_SYSTEM_PROMPT).unwrap();
    assert!(loaded.malformed.is_empty(), "{:?}", lines_of(&loaded));
    assert_eq!(loaded.empty, 0);
    assert!(loaded.examples.len() >= 150, "{}", loaded.examples.len());
    let seed = loaded
        .examples
        .iter()
        .find(|e| user(e) == "Hello!")
        .expect("the seed example");
    assert_eq!(
        assistant(seed),
        "Hello! I am Mimir, a tutoring assistant. Is there a subject you would like to explore, or a test you'd like to prepare for?"
    );
    let mut prompts = HashSet::new();
    for example in &loaded.examples {
        assert_eq!(example.messages[0].role, Role::System);
        assert_eq!(example.messages[0].content, DEFAULT_SYSTEM_PROMPT);
        assert_eq!(example.messages.len(), 3);
        for key in ["model_response", "issues", "source"] {
            assert!(
                example.meta.contains_key(key),
                "{key} in {:?}",
                example.meta
            );
        }
        assert!(
            prompts.insert(user(example).to_lowercase()),
            "{}",
            user(example)
        );
        assert_tone(example);
    }
    assert!(seed.meta["source"].ends_with("mimir_tutoring.csv:2"));
}

#[test]
fn shipped_rubric_prompts_are_not_in_the_training_set() {
    let normal = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let loaded = load_mimir_csv(&data_file("mimir_tutoring.csv"), SYSTEM).unwrap();
    let trained: HashSet<String> = loaded.examples.iter().map(|e| normal(user(e))).collect();
    let rubric = load_rubric(&data_file("rubric_eval.jsonl")).unwrap();
    assert!(rubric.len() >= 40, "{}", rubric.len());
    for item in &rubric {
        assert!(!trained.contains(&normal(&item.prompt)), "{}", item.id);
    }
}

#[test]
fn csv_rows_malformed_empty_and_multiline() {
    let text = "Prompt,Model Response,Issues,Ideal Response\n\
        What is 2 + 2?,5,Wrong sum.,2 + 2 = 4.\n\
        only,three,fields\n\
        \"Explain, step by step\",\"bad\",\"vague\",\"1. First.\n2. Second.\"\n\
        ,,,\n\
        Blank ideal?,something,issue,   \n\
        Too,many,fields,here,really\n\
        Last,\"unbalanced,x,y\n";
    let loaded = parse_mimir_csv(text, "t.csv", SYSTEM).unwrap();
    assert_eq!(loaded.examples.len(), 2);
    assert_eq!(loaded.empty, 2);
    assert_eq!(
        lines_of(&loaded),
        [
            "t.csv:3: expected 4 fields, found 3 (an unbalanced quote or a stray comma?)",
            "t.csv:8: expected 4 fields, found 5 (an unbalanced quote or a stray comma?)",
            "t.csv:9: expected 4 fields, found 2 (an unbalanced quote or a stray comma?)",
        ]
    );
    let first = &loaded.examples[0];
    assert_eq!(first.messages[0].content, SYSTEM);
    assert_eq!(assistant(first), "2 + 2 = 4.");
    assert_eq!(first.meta["model_response"], "5");
    assert_eq!(first.meta["issues"], "Wrong sum.");
    assert_eq!(first.meta["source"], "t.csv:2");
    let second = &loaded.examples[1];
    assert_eq!(user(second), "Explain, step by step");
    assert_eq!(assistant(second), "1. First.\n2. Second.");
    assert_eq!(second.meta["source"], "t.csv:4");
}

#[test]
fn csv_columns_found_by_name_and_required() {
    let reordered = "ideal response , PROMPT\nFour.,What is 2 + 2?\n";
    let loaded = parse_mimir_csv(reordered, "r.csv", SYSTEM).unwrap();
    assert_eq!(user(&loaded.examples[0]), "What is 2 + 2?");
    assert_eq!(assistant(&loaded.examples[0]), "Four.");
    assert!(!loaded.examples[0].meta.contains_key("issues"));

    let error = parse_mimir_csv("Prompt,Answer\na,b\n", "m.csv", SYSTEM).unwrap_err();
    assert!(matches!(
        error,
        DataError::MissingColumn {
            column: "Ideal Response",
            ..
        }
    ));
    let message = error.to_string();
    assert!(
        message.starts_with("m.csv: the header has no \"Ideal Response\""),
        "{message}"
    );

    let missing = load_mimir_csv(Path::new("/nonexistent/x.csv"), SYSTEM).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/x.csv"),
        "{missing}"
    );
}

#[test]
fn jsonl_both_shapes_and_malformed_lines() {
    let text = [
        r#"{"prompt": "What is 3 + 3?", "response": "3 + 3 = 6."}"#,
        "",
        r#"{"messages": [{"role": "system", "content": "Own prompt."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}], "meta": {"origin": "x"}}"#,
        r#"{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}"#,
        "not json",
        r#"{"question": "Q", "answer": "A"}"#,
        r#"{"messages": [{"role": "teacher", "content": "Q"}]}"#,
        r#"{"prompt": 7, "response": "A"}"#,
        r#"{"messages": [{"role": "user", "content": "Q only"}]}"#,
        r#"{"prompt": "Q", "response": "  "}"#,
        r#"[1, 2]"#,
    ]
    .join("\n");
    let loaded = parse_jsonl(&text, "d.jsonl", SYSTEM);
    assert_eq!(loaded.examples.len(), 3);
    assert_eq!(loaded.empty, 1);
    let problems = lines_of(&loaded);
    assert_eq!(problems.len(), 6, "{problems:?}");
    assert!(
        problems[0].starts_with("d.jsonl:5: not JSON"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("d.jsonl:6: expected {\"messages\""),
        "{problems:?}"
    );
    assert!(problems[1].ends_with("no \"prompt\""), "{problems:?}");
    assert!(
        problems[2].starts_with("d.jsonl:7: \"messages\": unknown variant `teacher`"),
        "{problems:?}"
    );
    assert_eq!(
        problems[3],
        "d.jsonl:8: \"prompt\" is a number, not a string"
    );
    assert_eq!(problems[4], "d.jsonl:9: no assistant turn");
    assert!(
        problems[5].starts_with("d.jsonl:11: expected") && problems[5].ends_with("found an array")
    );

    assert_eq!(loaded.examples[0].messages[0].content, SYSTEM);
    assert_eq!(assistant(&loaded.examples[0]), "3 + 3 = 6.");
    // A source's own system prompt is kept, and so is its meta.
    let own = &loaded.examples[1];
    assert_eq!(own.messages[0].content, "Own prompt.");
    assert_eq!(own.messages.len(), 3);
    assert_eq!(own.meta["origin"], "x");
    assert_eq!(own.meta["source"], "d.jsonl:3");
}

#[test]
fn normalised_output_round_trips() {
    let csv = load_mimir_csv(&data_file("mimir_tutoring.csv"), SYSTEM).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.jsonl");
    write_jsonl(&path, &csv.examples).unwrap();
    assert_eq!(Example::read_jsonl(&path).unwrap(), csv.examples);
    // Reading the output as a JSONL source gives the same conversations back.
    let again = load_jsonl(&path, SYSTEM).unwrap();
    assert!(again.malformed.is_empty());
    assert_eq!(again.examples.len(), csv.examples.len());
    assert_eq!(again.examples[5].messages, csv.examples[5].messages);
}

#[test]
fn url_sources_from_the_local_hub() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("datasets/acme/tutor");
    fs::create_dir_all(&repo).unwrap();
    fs::write(
        repo.join("rows.csv"),
        "Prompt,Model Response,Issues,Ideal Response\nHi,Yo,Casual.,Hello.\nbad,row\n",
    )
    .unwrap();
    fs::write(
        repo.join("rows.jsonl"),
        "{\"prompt\": \"What is 5 + 5?\", \"response\": \"10.\"}\n{oops\n",
    )
    .unwrap();
    fs::write(repo.join("notes.txt"), "just words").unwrap();
    fs::write(
        repo.join("pairs.txt"),
        "{\"prompt\": \"Q\", \"response\": \"A\"}\n",
    )
    .unwrap();
    let hub = serve_hub(dir.path(), 0).unwrap();
    let url = |file: &str| format!("{}/datasets/acme/tutor/resolve/main/{file}", hub.url());

    let csv = load_url(&url("rows.csv"), SYSTEM).unwrap();
    assert_eq!(csv.examples.len(), 1);
    assert_eq!(
        csv.examples[0].meta["source"],
        format!("{}:2", url("rows.csv"))
    );
    assert_eq!(
        lines_of(&csv),
        [format!(
            "{}:3: expected 4 fields, found 2 (an unbalanced quote or a stray comma?)",
            url("rows.csv")
        )]
    );

    let jsonl = load_url(&url("rows.jsonl"), SYSTEM).unwrap();
    assert_eq!(assistant(&jsonl.examples[0]), "10.");
    assert_eq!(jsonl.malformed.len(), 1);
    assert!(lines_of(&jsonl)[0].starts_with(&format!("{}:2: not JSON", url("rows.jsonl"))));

    // No telling extension: the first character decides.
    assert_eq!(
        load_url(&url("pairs.txt"), SYSTEM).unwrap().examples.len(),
        1
    );
    let unknown = load_url(&url("notes.txt"), SYSTEM).unwrap_err();
    assert!(
        matches!(unknown, DataError::UnknownFormat { .. }),
        "{unknown}"
    );

    let missing = load_url(&url("absent.csv"), SYSTEM)
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with(&url("absent.csv")), "{missing}");
    assert!(missing.contains("404"), "{missing}");

    let scheme = load_url("ftp://example.com/a.csv", SYSTEM)
        .unwrap_err()
        .to_string();
    assert!(scheme.contains("only http:// and https://"), "{scheme}");
}

/// The value of `a op b` in a synthetic arithmetic question.
fn arithmetic(question: &str) -> i64 {
    let parts: Vec<&str> = question.split(' ').collect();
    let (a, b): (i64, i64) = (parts[0].parse().unwrap(), parts[2].parse().unwrap());
    match parts[1] {
        "+" => a + b,
        "minus" => a - b,
        "×" => a * b,
        "÷" => {
            assert_eq!(a % b, 0, "{question}");
            a / b
        }
        op => panic!("operator {op}"),
    }
}

#[test]
fn synthetic_is_seeded_varied_and_right() {
    let a = synthetic(200, 7, SYSTEM);
    assert_eq!(a, synthetic(200, 7, SYSTEM));
    assert_ne!(a.examples, synthetic(200, 8, SYSTEM).examples);
    assert_eq!(a.examples.len(), 200);
    assert!(a.malformed.is_empty() && a.empty == 0);
    let kinds: HashSet<&str> = a.examples.iter().map(|e| e.meta["kind"].as_str()).collect();
    assert_eq!(kinds.len(), Kind::ALL.len());
    let mut checked = 0;
    for example in &a.examples {
        assert_eq!(example.messages[0].content, SYSTEM);
        assert_tone(example);
        if example.meta["kind"] == "check_answer" {
            // "Correct. Q = R. ..." or "Not quite. Q = R, not C. ..."
            let reply = assistant(example);
            let (verdict, rest) = reply.split_once(". ").unwrap();
            let (question, rest) = rest.split_once(" = ").unwrap();
            let result: i64 = rest.split([',', '.']).next().unwrap().parse().unwrap();
            assert_eq!(arithmetic(question), result, "{reply}");
            let claimed = user(example)
                .rsplit(['=', ' '])
                .find_map(|w| w.trim_end_matches(['?', '.']).parse::<i64>().ok())
                .unwrap();
            assert_eq!(verdict == "Correct", claimed == result, "{reply}");
            checked += 1;
        }
    }
    assert_eq!(checked, 40);
    // Every kind can be drawn on its own.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for kind in Kind::ALL {
        let (prompt, reply) = generate_synthetic(kind, &mut rng);
        assert!(!prompt.is_empty() && !reply.is_empty(), "{kind:?}");
    }
}

#[test]
fn split_is_deterministic_and_counts_add_up() {
    let csv = || load_mimir_csv(&data_file("mimir_tutoring.csv"), SYSTEM).unwrap();
    let text = "Prompt,Model Response,Issues,Ideal Response\n\
        What is 2 + 2?,5,x,2 + 2 = 4.\n\
        what  is 2 + 2?,5,x,2 + 2 = 4.\n\
        ,,,\n\
        broken\n";
    let sources = || {
        vec![
            csv(),
            parse_mimir_csv(text, "extra.csv", SYSTEM).unwrap(),
            csv(),
            synthetic(50, 3, SYSTEM),
        ]
    };
    let options = SplitOptions {
        eval_fraction: 0.2,
        seed: 42,
    };
    let first = prepare(sources(), options).unwrap();
    assert_eq!(first, prepare(sources(), options).unwrap());
    let other = prepare(
        sources(),
        SplitOptions {
            seed: 43,
            ..options
        },
    )
    .unwrap();
    assert_ne!(first.eval, other.eval);
    assert_eq!(first.summary.kept, other.summary.kept);

    let n = csv().examples.len();
    let prompts: HashSet<String> = csv()
        .examples
        .iter()
        .map(|e| user(e).to_lowercase())
        .collect();
    let synthetic_repeats = synthetic(50, 3, SYSTEM)
        .examples
        .iter()
        .filter(|e| prompts.contains(&user(e).to_lowercase()))
        .count();
    let s = &first.summary;
    let counts: Vec<(usize, usize, usize, usize)> = s
        .sources
        .iter()
        .map(|c| (c.read, c.duplicates, c.empty, c.malformed))
        .collect();
    assert_eq!(
        counts,
        [
            (n, 0, 0, 0),
            (2, 1, 1, 1),
            (n, n, 0, 0),
            (50, synthetic_repeats, 0, 0)
        ]
    );
    assert_eq!(s.kept, n + 1 + 50 - synthetic_repeats);
    assert_eq!(s.duplicates, n + 1 + synthetic_repeats);
    assert_eq!((s.empty, s.malformed), (1, 1));
    assert_eq!(
        first.malformed[0].to_string(),
        "extra.csv:5: expected 4 fields, found 1 (an unbalanced quote or a stray comma?)"
    );
    assert_eq!(s.eval, eval_count(s.kept, 0.2));
    assert_eq!(s.eval, ((s.kept as f64) * 0.2).round() as usize);
    assert_eq!(s.train + s.eval, s.kept);
    assert_eq!((first.train.len(), first.eval.len()), (s.train, s.eval));
    // Nothing is in both splits.
    let train: HashSet<String> = first.train.iter().map(|e| user(e).to_owned()).collect();
    assert!(first.eval.iter().all(|e| !train.contains(user(e))));
    assert!(s.table().contains(&format!("kept {} examples", s.kept)));
}

#[test]
fn eval_count_edges_and_bad_fraction() {
    assert_eq!(eval_count(0, 0.5), 0);
    assert_eq!(eval_count(1, 0.5), 0);
    assert_eq!(eval_count(10, 0.0), 0);
    assert_eq!(eval_count(10, 0.01), 1);
    assert_eq!(eval_count(3, 0.9), 2);
    assert_eq!(eval_count(17, 0.235), 4);
    for fraction in [1.0, -0.1, f64::NAN] {
        let options = SplitOptions {
            eval_fraction: fraction,
            seed: 0,
        };
        let error = prepare(vec![synthetic(4, 0, SYSTEM)], options).unwrap_err();
        assert!(error.to_string().contains("eval_fraction"), "{error}");
    }
}

#[test]
fn data_command_writes_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/smollm2-135m-instruct/model_config.json");
    let status = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("data")
        .arg("--csv")
        .arg(data_file("mimir_tutoring.csv"))
        .args(["--synthetic", "30", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let train = Example::read_jsonl(&out.join("train.jsonl")).unwrap();
    let eval = Example::read_jsonl(&out.join("eval.jsonl")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["train"], train.len());
    assert_eq!(summary["eval"], eval.len());
    // The smollm2 config holds out 10 %.
    assert_eq!(eval.len(), eval_count(train.len() + eval.len(), 0.1));
    assert!(train
        .iter()
        .all(|e| e.messages[0].content == DEFAULT_SYSTEM_PROMPT));

    let none = Command::new(env!("CARGO_BIN_EXE_mimir-train"))
        .arg("data")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("at least one source"));
}
