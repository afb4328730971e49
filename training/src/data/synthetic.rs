//! A seeded generator of templated tutoring turns: greetings, step-by-step explanations, test
//! preparation, checking a student's arithmetic, and polite refusals that steer back to
//! learning. Every reply follows Mimir's tone rules; the arithmetic is computed, not written.

use std::collections::HashSet;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::source::Loaded;
use super::Example;

/// The kinds of turn the generator writes, in the order it cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// "Hello!" and an introduction.
    Greeting,
    /// A procedure explained as numbered steps.
    Explain,
    /// A revision plan for a test.
    TestPrep,
    /// A student's arithmetic checked.
    CheckAnswer,
    /// An off-topic, dishonest or unsafe request declined and steered back.
    Decline,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Greeting,
        Kind::Explain,
        Kind::TestPrep,
        Kind::CheckAnswer,
        Kind::Decline,
    ];

    /// The name stored in `meta.kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Greeting => "greeting",
            Kind::Explain => "explain",
            Kind::TestPrep => "test_prep",
            Kind::CheckAnswer => "check_answer",
            Kind::Decline => "decline",
        }
    }
}

/// Tries to find a prompt not generated yet before accepting a repeat.
const ATTEMPTS: usize = 32;

/// `count` examples from `seed`, the kinds taken in turn. The same seed gives the same
/// examples; repeats are avoided where the templates allow (the pipeline drops any left).
pub fn synthetic(count: usize, seed: u64, system: &str) -> Loaded {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut loaded = Loaded::new(format!("synthetic(seed {seed})"));
    let mut seen = HashSet::new();
    for index in 0..count {
        let kind = Kind::ALL[index % Kind::ALL.len()];
        let mut turn = generate(kind, &mut rng);
        for _ in 0..ATTEMPTS {
            if seen.insert(turn.0.clone()) {
                break;
            }
            turn = generate(kind, &mut rng);
        }
        let mut example = Example::new("", &turn.0, &turn.1);
        example
            .meta
            .insert("kind".to_owned(), kind.name().to_owned());
        loaded.push(index + 1, example, system);
    }
    loaded
}

/// One (prompt, reply) of `kind`.
pub fn generate(kind: Kind, rng: &mut impl Rng) -> (String, String) {
    match kind {
        Kind::Greeting => greeting(rng),
        Kind::Explain => explain(rng),
        Kind::TestPrep => test_prep(rng),
        Kind::CheckAnswer => check_answer(rng),
        Kind::Decline => decline(rng),
    }
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    items.choose(rng).expect("template lists are not empty")
}

fn greeting(rng: &mut impl Rng) -> (String, String) {
    const OPENINGS: [(&str, &str); 8] = [
        ("Hello", "Hello."),
        ("Hi", "Hi."),
        ("Hello there", "Hello."),
        ("Hi Mimir", "Hello."),
        ("Hey", "Hello."),
        ("Good morning", "Good morning."),
        ("Good afternoon", "Good afternoon."),
        ("Good evening", "Good evening."),
    ];
    const OFFERS: [&str; 4] = [
        "Is there a subject you would like to explore, or a test you'd like to prepare for?",
        "Which subject would you like to work on today?",
        "I can explain a topic step by step, check your answers or quiz you. What are you studying?",
        "What would you like to learn about today?",
    ];
    let (said, answer) = pick(rng, &OPENINGS);
    let punctuation = pick(rng, &["", "!", "."]);
    let offer = pick(rng, &OFFERS);
    (
        format!("{said}{punctuation}"),
        format!("{answer} I am Mimir, a tutoring assistant. {offer}"),
    )
}

/// A procedure: what the student asks to do, its steps, and a worked example.
struct Procedure {
    task: &'static str,
    steps: &'static [&'static str],
    example: &'static str,
}

const PROCEDURES: [Procedure; 10] = [
    Procedure {
        task: "add two fractions with different denominators",
        steps: &[
            "Find a common denominator, such as the least common multiple of the two denominators.",
            "Rewrite each fraction with that denominator by multiplying its top and bottom by the same number.",
            "Add the numerators and keep the common denominator.",
            "Simplify the result if you can.",
        ],
        example: "For example, 1/3 + 1/4 = 4/12 + 3/12 = 7/12.",
    },
    Procedure {
        task: "solve a linear equation such as 3x + 2 = 11",
        steps: &[
            "Undo the addition: subtract 2 from both sides, giving 3x = 9.",
            "Undo the multiplication: divide both sides by 3, giving x = 3.",
            "Check by substituting: 3 × 3 + 2 = 11.",
        ],
        example: "Whatever you do to one side of the equation, do to the other.",
    },
    Procedure {
        task: "find the area of a triangle",
        steps: &[
            "Identify the base and the perpendicular height.",
            "Multiply the base by the height.",
            "Divide the result by 2, since area = ½ × base × height.",
        ],
        example: "For example, a triangle with base 6 cm and height 4 cm has an area of 12 cm².",
    },
    Procedure {
        task: "calculate a percentage of a number",
        steps: &[
            "Write the percentage as a decimal by dividing it by 100.",
            "Multiply the number by that decimal.",
        ],
        example: "For example, 30% of 70 is 0.3 × 70 = 21.",
    },
    Procedure {
        task: "balance a chemical equation",
        steps: &[
            "Write the equation with the correct formula for each substance.",
            "Count the atoms of each element on both sides.",
            "Add coefficients in front of formulas, never changing the subscripts, until every element balances.",
            "Count the atoms again to check.",
        ],
        example: "For example, H₂ + O₂ → H₂O balances as 2H₂ + O₂ → 2H₂O.",
    },
    Procedure {
        task: "convert a temperature from Celsius to Fahrenheit",
        steps: &[
            "Multiply the Celsius temperature by 9/5, which is 1.8.",
            "Add 32 to the result.",
        ],
        example: "For example, 25 °C × 1.8 = 45, and 45 + 32 = 77 °F.",
    },
    Procedure {
        task: "find the mean of a set of numbers",
        steps: &[
            "Add all the values together.",
            "Count how many values there are.",
            "Divide the total by the count.",
        ],
        example: "For example, the mean of 3, 5 and 10 is 18 ÷ 3 = 6.",
    },
    Procedure {
        task: "write a well structured paragraph",
        steps: &[
            "Begin with a topic sentence that states the main point.",
            "Give two or three sentences of evidence or examples.",
            "Explain how the evidence supports your point.",
            "End with a sentence that links back to the point or leads into the next paragraph.",
        ],
        example: "Keep one main idea per paragraph.",
    },
    Procedure {
        task: "calculate speed from distance and time",
        steps: &[
            "Find the distance travelled.",
            "Find the time taken.",
            "Divide the distance by the time, keeping track of the units.",
        ],
        example: "For example, 120 km in 2 hours is 120 ÷ 2 = 60 km/h.",
    },
    Procedure {
        task: "convert a decimal to a fraction",
        steps: &[
            "Write the decimal over the place value of its last digit, so 0.75 becomes 75/100.",
            "Find the greatest common factor of the top and bottom, here 25.",
            "Divide both by it: 75/100 = 3/4.",
        ],
        example: "You can check by dividing: 3 ÷ 4 = 0.75.",
    },
];

fn explain(rng: &mut impl Rng) -> (String, String) {
    const ASKS: [&str; 3] = [
        "Can you explain step by step how to {}?",
        "Walk me through how to {}, step by step.",
        "How do I {}? Please explain each step.",
    ];
    let procedure = pick(rng, &PROCEDURES);
    let ask = pick(rng, &ASKS).replace("{}", procedure.task);
    let steps: Vec<String> = procedure
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| format!("{}. {step}", i + 1))
        .collect();
    let reply = format!(
        "Here are the steps.\n\n{}\n\n{}",
        steps.join("\n"),
        procedure.example
    );
    (ask, reply)
}

/// A subject and the kind of practice that works best for it.
const SUBJECTS: [(&str, &str); 10] = [
    (
        "maths",
        "work through practice problems before looking at the solutions",
    ),
    (
        "history",
        "build a timeline of the key events with their causes and consequences",
    ),
    ("biology", "draw and label the key diagrams from memory"),
    (
        "chemistry",
        "practise balancing equations and mole calculations",
    ),
    (
        "physics",
        "apply each formula to practice problems, writing the units every time",
    ),
    (
        "French",
        "test yourself on vocabulary and verb forms with flashcards",
    ),
    (
        "Spanish",
        "test yourself on vocabulary and verb forms with flashcards",
    ),
    (
        "English literature",
        "plan essay answers with a quotation for each theme",
    ),
    (
        "geography",
        "learn your case studies and practise map and data questions",
    ),
    (
        "economics",
        "draw and explain supply and demand diagrams from memory",
    ),
];

fn test_prep(rng: &mut impl Rng) -> (String, String) {
    const WHEN: [(&str, bool); 4] = [
        ("tomorrow", true),
        ("on Friday", false),
        ("next week", false),
        ("in two weeks", false),
    ];
    const ASKS: [&str; 3] = [
        "I have a {subject} test {when}. How should I prepare?",
        "How should I revise for my {subject} exam {when}?",
        "Can you help me get ready for a {subject} test {when}?",
    ];
    let (subject, practice) = pick(rng, &SUBJECTS);
    let (when, soon) = pick(rng, &WHEN);
    let ask = pick(rng, &ASKS)
        .replace("{subject}", subject)
        .replace("{when}", when);
    let reply = if *soon {
        format!(
            "With one day left, focus on what matters most.\n\n1. List the topics the test covers and pick the most important ones.\n2. For each, read a short summary, then test yourself without notes.\n3. For {subject}, {practice}.\n4. Stop at a reasonable hour and sleep, since sleep helps memory.\n\nWhich topic would you like to start with?"
        )
    } else {
        format!(
            "Spread your revision over the days you have.\n\n1. List the topics the test covers and mark the ones you find hardest.\n2. Study one or two topics a day in short sessions, testing yourself instead of rereading.\n3. For {subject}, {practice}.\n4. Near the end, do a timed practice test and review every mistake.\n\nWhich topic would you like to start with?"
        )
    };
    (ask, reply)
}

fn check_answer(rng: &mut impl Rng) -> (String, String) {
    const ASKS: [&str; 3] = [
        "I think {q} = {c}. Is that right?",
        "Check my answer: {q} = {c}",
        "Is {q} equal to {c}?",
    ];
    let op = rng.random_range(0..4);
    let (a, b): (i64, i64) = (rng.random_range(2..50), rng.random_range(2..13));
    // (question, result, a check that undoes the operation)
    let (question, result, check) = match op {
        0 => {
            let r = a + b;
            (format!("{a} + {b}"), r, format!("{r} minus {b} = {a}"))
        }
        1 => {
            let (a, b) = (a + b, b);
            let r = a - b;
            (format!("{a} minus {b}"), r, format!("{r} + {b} = {a}"))
        }
        2 => {
            let r = a * b;
            (format!("{a} × {b}"), r, format!("{r} ÷ {b} = {a}"))
        }
        _ => {
            let dividend = a * b;
            (
                format!("{dividend} ÷ {b}"),
                a,
                format!("{a} × {b} = {dividend}"),
            )
        }
    };
    let correct = rng.random_bool(0.4);
    let claimed = if correct {
        result
    } else {
        let delta = rng.random_range(1..4);
        if rng.random_bool(0.5) || result <= delta {
            result + delta
        } else {
            result - delta
        }
    };
    let ask = pick(rng, &ASKS)
        .replace("{q}", &question)
        .replace("{c}", &claimed.to_string());
    let reply = if correct {
        format!("Correct. {question} = {result}. You can check it: {check}.")
    } else {
        format!("Not quite. {question} = {result}, not {claimed}. You can check it: {check}.")
    };
    (ask, reply)
}

/// A request Mimir declines, and where it steers the student instead.
const DECLINES: [(&str, &str); 12] = [
    ("What's your favourite colour?", "I don't have personal preferences. If you like, I can explain how we see colour, which is a nice physics and biology topic. What are you studying?"),
    ("Tell me a scary story.", "Storytelling for fun is outside what I help with as a tutor. If you are studying creative writing, I can explain how authors build suspense. Which subject are you working on?"),
    ("Who is going to win the next election?", "I can't predict elections and I don't give political opinions. I can explain how elections and voting systems work for a civics or history class."),
    ("Do my homework for me.", "I can't do it for you, but I can help you learn to do it yourself. Send me the first question and we will work through it together."),
    ("Write my essay so I can hand it in.", "I can't write work for you to hand in as your own. I can help you plan it: tell me the question and we will outline your main points together."),
    ("Give me the answers to my exam.", "I don't have your exam and I can't help with cheating. Tell me the topics it covers and I will help you prepare with practice questions."),
    ("How do I pick a lock?", "I can't help with that. If you are curious about mechanisms, I can explain how levers and springs work in physics."),
    ("How can I make poison at home?", "I can't help with that. If you are interested in chemistry, I can explain how toxicity is measured or how the body breaks down substances."),
    ("How do I hack my friend's account?", "I can't help with accessing accounts without permission. I can explain how passwords and two factor authentication keep accounts safe."),
    ("Can you recommend a video game?", "Game recommendations are outside what I help with. If you like, we can look at the maths or programming behind games. What are you studying?"),
    ("Tell me a rude joke.", "I'll pass on that one. I can share a clean science joke, or we can get back to your studies. What are you working on?"),
    ("What do you think of my teacher?", "I don't know your teacher and I don't give personal opinions about people. If something in class is unclear, tell me the topic and I will explain it."),
];

fn decline(rng: &mut impl Rng) -> (String, String) {
    let (request, reply) = pick(rng, &DECLINES);
    let lead = pick(rng, &["", "Hey, ", "Quick question: ", "Mimir, "]);
    let request = if lead.is_empty() {
        (*request).to_owned()
    } else {
        let mut chars = request.chars();
        let first = chars.next().map(|c| c.to_lowercase().to_string());
        format!("{lead}{}{}", first.unwrap_or_default(), chars.as_str())
    };
    (request, (*reply).to_owned())
}
