//! Multi-turn sessions: what each turn says and how long the user thinks before it. Synthetic
//! sessions are made from (seed, session number) like single prompts; recorded ones are read
//! from ShareGPT or OpenAI-messages files before the run. The assistant's side is never taken
//! from the file: the executor puts the server's own streamed answer into the history, so the
//! next turn's prefix is exactly what the server produced and its prefix cache is really used.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp};
use serde_json::Value;

use super::dataset::{rng_for, DatasetError, Lengths};
use crate::config::{ConversationFormat, Count, ThinkDistribution};

/// One session, ready to play: the system prompt and the user's turns.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    /// A recorded conversation played again (more sessions than the file holds): its first
    /// turn is a prompt the server was sent before.
    pub repeat: bool,
}

/// One user turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub user: String,
    pub max_tokens: u32,
    /// The pause before this turn is sent, after the previous answer ended (0 for the first).
    pub think: Duration,
}

/// Where sessions come from: session `n` is the same whatever order sessions run in.
pub trait Sessions: Send + Sync {
    fn session(&self, n: u64) -> Conversation;
    /// The ideal prefix-cache hit of each turn.
    fn ideal(&self) -> &TurnIdeal;
    /// What priming the server's prefix cache sends (`workload.cache.prime`): the shared
    /// system prompt once; nothing when sessions share none.
    fn prime(&self) -> Vec<super::dataset::Prompt> {
        Vec::new()
    }
}

/// The ideal prefix-cache hit of a conversation's turns (`workload::ideal` for sessions),
/// counted from the server's own token counts in whole server blocks: a later turn re-sends
/// the previous turn's prompt and answer, all of it cacheable but the answer's last token
/// (never run through the model); a first turn shares the system prompt once any session (or
/// the prime) sent it, and all of itself when it repeats a recorded conversation.
#[derive(Debug)]
pub struct TurnIdeal {
    block: u32,
    /// Tokens of the system prompt every session shares (0: none).
    system_tokens: u32,
    system_sent: AtomicBool,
}

impl TurnIdeal {
    pub fn new(block: u32, system_tokens: u32) -> Self {
        Self {
            block: block.max(1),
            system_tokens,
            system_sent: AtomicBool::new(false),
        }
    }

    /// The ideal hit of a session's first turn of `input` prompt tokens.
    pub fn first(&self, input: u32, repeat: bool) -> u32 {
        let shared = if repeat {
            input
        } else if self.system_sent.swap(true, Ordering::Relaxed) {
            self.system_tokens
        } else {
            0
        };
        self.whole(shared, input)
    }

    /// The ideal hit of a later turn of `input` prompt tokens, after a turn of `prev_input`
    /// prompt tokens answered with `prev_output`.
    pub fn later(&self, prev_input: u32, prev_output: u32, input: u32) -> u32 {
        self.whole((prev_input + prev_output).saturating_sub(1), input)
    }

    fn whole(&self, shared: u32, input: u32) -> u32 {
        crate::config::sessions::whole_blocks(shared, input, self.block)
    }

    fn primed(&self) {
        self.system_sent.store(true, Ordering::Relaxed);
    }
}

/// Think time between turns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Think {
    pub mean: Duration,
    pub distribution: ThinkDistribution,
}

impl Think {
    fn draw(&self, rng: &mut impl Rng) -> Duration {
        let m = self.mean.as_secs_f64();
        if m <= 0.0 {
            return Duration::ZERO;
        }
        let s = match self.distribution {
            ThinkDistribution::Constant => m,
            ThinkDistribution::Exponential => Exp::new(1.0 / m).map_or(m, |e| e.sample(rng)),
            ThinkDistribution::Uniform => rng.random_range(0.0..=2.0 * m),
        };
        Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
    }
}

/// Synthetic sessions: `turns` turns of `input_len` new tokens each, answers of `output_len`,
/// after a shared system prompt of `system_len` tokens.
pub struct Synthetic {
    turns: Count,
    input_len: u32,
    /// The first turn's tokens.
    first_input_len: u32,
    output_len: u32,
    system: Option<String>,
    think: Think,
    seed: u64,
    lengths: Lengths,
    ideal: TurnIdeal,
}

impl Synthetic {
    /// `block` is the server's prefix-cache block (the ideal hit counts in it).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        turns: Count,
        (first_input_len, input_len): (u32, u32),
        output_len: u32,
        system_len: u32,
        think: Think,
        seed: u64,
        lengths: Lengths,
        block: u32,
    ) -> Self {
        // The system prompt comes from a stream no session uses.
        let system = (system_len > 0)
            .then(|| lengths.continuation(&mut rng_for(seed, u64::MAX - 1), system_len));
        Self {
            turns,
            input_len,
            first_input_len,
            output_len,
            system,
            think,
            seed,
            lengths,
            ideal: TurnIdeal::new(block, system_len),
        }
    }
}

impl Sessions for Synthetic {
    fn session(&self, n: u64) -> Conversation {
        let mut rng = rng_for(self.seed, n);
        let (lo, hi) = self.turns.bounds();
        let count = rng.random_range(lo.max(1)..=hi.max(1));
        let turns = (0..count)
            .map(|k| Turn {
                // The first turn carries the chat template's overhead, later ones do not.
                user: match k {
                    0 if self.system.is_none() => {
                        self.lengths.prompt(&mut rng, self.first_input_len)
                    }
                    0 => self.lengths.continuation(&mut rng, self.first_input_len),
                    _ => self.lengths.continuation(&mut rng, self.input_len),
                },
                max_tokens: self.output_len,
                think: match k {
                    0 => Duration::ZERO,
                    _ => self.think.draw(&mut rng),
                },
            })
            .collect();
        Conversation {
            system: self.system.clone(),
            turns,
            repeat: false,
        }
    }

    fn ideal(&self) -> &TurnIdeal {
        &self.ideal
    }

    /// The system prompt and a one-word user turn: the prefix every first turn shares.
    fn prime(&self) -> Vec<super::dataset::Prompt> {
        let Some(system) = &self.system else {
            return Vec::new();
        };
        self.ideal.primed();
        let user = self
            .lengths
            .continuation(&mut rng_for(self.seed, u64::MAX - 2), 1);
        let messages = serde_json::json!([
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]);
        vec![super::dataset::Prompt {
            json: messages.to_string().into(),
            max_tokens: 1,
            expected_input_tokens: None,
            ideal_cached_tokens: None,
        }]
    }
}

/// A conversation as read from a file: the user turns, with the recorded answer's length in
/// words (it sets `max_tokens` unless `output_len` does).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedConversation {
    pub system: Option<String>,
    pub turns: Vec<(String, Option<u32>)>,
}

/// Recorded sessions, cycled: session `n` is conversation `n mod count`.
pub struct Recorded {
    pub conversations: Arc<Vec<RecordedConversation>>,
    pub output_len: Option<u32>,
    pub think: Think,
    pub seed: u64,
    pub lengths: Lengths,
    pub ideal: TurnIdeal,
}

/// `max_tokens` of a recorded turn without an answer to size it by.
const DEFAULT_RECORDED_MAX_TOKENS: u32 = 256;

impl Sessions for Recorded {
    fn session(&self, n: u64) -> Conversation {
        let len = self.conversations.len().max(1) as u64;
        let Some(c) = self.conversations.get((n % len) as usize) else {
            return Conversation {
                system: None,
                turns: vec![],
                repeat: false,
            };
        };
        let mut rng = rng_for(self.seed, n);
        let per_word = self.lengths.cal.tokens_per_word;
        let turns = c
            .turns
            .iter()
            .enumerate()
            .map(|(k, (user, answer_words))| Turn {
                user: user.clone(),
                max_tokens: self.output_len.unwrap_or_else(|| {
                    answer_words.map_or(DEFAULT_RECORDED_MAX_TOKENS, |w| {
                        ((w as f64 * per_word).round() as u32).max(1)
                    })
                }),
                think: match k {
                    0 => Duration::ZERO,
                    _ => self.think.draw(&mut rng),
                },
            })
            .collect();
        Conversation {
            system: c.system.clone(),
            turns,
            repeat: n >= len,
        }
    }

    fn ideal(&self) -> &TurnIdeal {
        &self.ideal
    }
}

/// Reads recorded conversations: ShareGPT (a JSON array, or one conversation per line) or
/// OpenAI messages (one `{"messages": [...]}` per line). Every conversation is checked; the
/// first bad one is reported with its line (or array index).
pub fn load(
    path: &Path,
    format: ConversationFormat,
) -> Result<Vec<RecordedConversation>, DatasetError> {
    let shown = path.display().to_string();
    let text = super::dataset::read_dataset(path)?;
    parse(&text, &shown, format)
}

/// [`load`] on text already read; `shown` names the file in errors.
pub fn parse(
    text: &str,
    shown: &str,
    format: ConversationFormat,
) -> Result<Vec<RecordedConversation>, DatasetError> {
    let bad = |line: usize, message: String| DatasetError::Line {
        path: shown.to_string(),
        line,
        message,
    };
    // ShareGPT ships as one JSON array; JSONL has one conversation per line.
    let items: Vec<(usize, Value)> = match text.trim_start().starts_with('[') {
        true => serde_json::from_str::<Vec<Value>>(text)
            .map_err(|e| bad(e.line(), format!("not a JSON array of conversations: {e}")))?
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect(),
        false => {
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v =
                    serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
                out.push((i + 1, v));
            }
            out
        }
    };
    let mut out = Vec::new();
    for (line, v) in items {
        let messages = messages_of(&v, format).map_err(|m| bad(line, m))?;
        match conversation(&messages) {
            Some(c) => out.push(c),
            None => return Err(bad(line, "no user turn in this conversation".into())),
        }
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            path: shown.to_string(),
        });
    }
    Ok(out)
}

/// (role, text) pairs of one conversation, roles normalised to system / user / assistant.
fn messages_of(
    v: &Value,
    format: ConversationFormat,
) -> Result<Vec<(&'static str, String)>, String> {
    let (key, role_key, text_key) = match format {
        ConversationFormat::Sharegpt => ("conversations", "from", "value"),
        ConversationFormat::Messages => ("messages", "role", "content"),
    };
    let list = v.get(key).and_then(Value::as_array).ok_or_else(|| {
        format!(
            "expected `{{\"{key}\": [...]}}` (format: {})",
            match format {
                ConversationFormat::Sharegpt => "sharegpt",
                ConversationFormat::Messages => "messages",
            }
        )
    })?;
    let mut out = Vec::new();
    for (j, m) in list.iter().enumerate() {
        let who = m.get(role_key).and_then(Value::as_str).unwrap_or_default();
        // vLLM's ShareGPT converter's mapping.
        let role = match who {
            "human" | "user" => "user",
            "gpt" | "bing" | "chatgpt" | "bard" | "assistant" | "model" => "assistant",
            "system" | "developer" => "system",
            "tool" => continue,
            other => {
                return Err(format!(
                    "turn {j}: `{role_key}` is {other:?}; expected human, gpt, system (sharegpt) or user, assistant, system (messages)"
                ))
            }
        };
        let text = match m.get(text_key) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Err(format!("turn {j}: missing `{text_key}`")),
        };
        out.push((role, text));
    }
    Ok(out)
}

/// The user turns of `messages`, each with the word count of the answer after it; leading
/// assistant turns are dropped (as vLLM's converter does).
fn conversation(messages: &[(&'static str, String)]) -> Option<RecordedConversation> {
    let mut system = None;
    let mut turns: Vec<(String, Option<u32>)> = Vec::new();
    for (role, text) in messages {
        match *role {
            "system" if turns.is_empty() => system = Some(text.clone()),
            "user" => turns.push((text.clone(), None)),
            "assistant" => {
                if let Some(last) = turns.last_mut() {
                    last.1 = Some(text.split_whitespace().count() as u32);
                }
            }
            _ => {}
        }
    }
    (!turns.is_empty()).then_some(RecordedConversation { system, turns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Api;

    fn lengths() -> Lengths {
        Lengths::words_only(Api::Chat)
    }

    #[test]
    fn synthetic_sessions_are_seeded_and_sized() {
        let think = Think {
            mean: Duration::from_millis(500),
            distribution: ThinkDistribution::Exponential,
        };
        let s = Synthetic::new(
            Count::Range([2, 5]),
            (30, 30),
            12,
            40,
            think,
            9,
            lengths(),
            16,
        );
        let a = s.session(3);
        assert_eq!(a, s.session(3), "session n is the same every time");
        assert_ne!(a.turns[0].user, s.session(4).turns[0].user);
        for n in 0..50 {
            let c = s.session(n);
            assert!((2..=5).contains(&c.turns.len()));
            assert_eq!(
                c.system.as_deref().map(|t| t.split_whitespace().count()),
                Some(40)
            );
            assert_eq!(c.system, a.system, "one system prompt for every session");
            assert!(c
                .turns
                .iter()
                .all(|t| t.user.split_whitespace().count() == 30 && t.max_tokens == 12));
            assert!(c.turns[0].think.is_zero());
        }
        let mean = (0..400)
            .flat_map(|n| s.session(n).turns.into_iter().skip(1))
            .map(|t| t.think.as_secs_f64())
            .collect::<Vec<_>>();
        let m = mean.iter().sum::<f64>() / mean.len() as f64;
        assert!((m - 0.5).abs() < 0.08, "mean think time {m}");
    }

    #[test]
    fn sharegpt_and_messages_files_read_their_user_turns() {
        let sharegpt = r#"[{"id": "a", "conversations": [{"from": "gpt", "value": "ignored lead"},
            {"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello how are you"},
            {"from": "human", "value": "Fine"}]}]"#;
        let c = parse(sharegpt, "s.json", ConversationFormat::Sharegpt).unwrap();
        assert_eq!(
            c[0].turns,
            [
                ("Hi there".to_string(), Some(4)),
                ("Fine".to_string(), None)
            ]
        );
        let msgs = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief\"}, {\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b c\"}, {\"role\": \"user\", \"content\": \"d\"}]}\n";
        let c = parse(msgs, "m.jsonl", ConversationFormat::Messages).unwrap();
        assert_eq!(c[0].system.as_deref(), Some("Be brief"));
        assert_eq!(c[0].turns.len(), 2);
        let r = Recorded {
            conversations: Arc::new(c),
            output_len: None,
            think: Think::default(),
            seed: 0,
            lengths: lengths(),
            ideal: TurnIdeal::new(16, 0),
        };
        let s = r.session(7);
        assert!(s.repeat, "session 7 of one conversation plays it again");
        assert!(!r.session(0).repeat);
        assert_eq!(
            (s.turns[0].max_tokens, s.turns[1].max_tokens),
            (2, DEFAULT_RECORDED_MAX_TOKENS)
        );
        let wrong = parse(msgs, "m.jsonl", ConversationFormat::Sharegpt)
            .unwrap_err()
            .to_string();
        assert!(
            wrong.starts_with("m.jsonl:1: expected `{\"conversations\": [...]}`"),
            "{wrong}"
        );
        let robot = "{\"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}";
        let e = parse(robot, "r.jsonl", ConversationFormat::Sharegpt)
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.jsonl:1: turn 0: `from` is \"robot\""), "{e}");
    }

    #[test]
    fn a_turn_is_served_the_previous_prompt_and_answer_and_a_first_turn_the_system_prompt() {
        let ideal = TurnIdeal::new(16, 100);
        // The first session to send the system prompt misses it; every later one is served
        // its whole blocks (96 of 100).
        assert_eq!(ideal.first(130, false), 0);
        assert_eq!(ideal.first(130, false), 96);
        // A recorded conversation played again: all of it but the last token, in blocks.
        assert_eq!(ideal.first(130, true), 128);
        // After a turn of 130 prompt tokens answered with 40: 169 computed tokens → 160.
        assert_eq!(ideal.later(130, 40, 200), 160);
        // Never more than all but the prompt's last token.
        assert_eq!(ideal.later(130, 40, 150), 144);
        // The prime sends the system prompt: the first session is served it too.
        let primed = TurnIdeal::new(16, 100);
        let s = Synthetic::new(
            Count::Fixed(2),
            (30, 30),
            12,
            100,
            Think::default(),
            9,
            lengths(),
            16,
        );
        let prime = s.prime();
        assert_eq!(prime.len(), 1);
        assert!(prime[0]
            .json
            .contains(s.session(0).system.as_deref().unwrap()));
        primed.primed();
        assert_eq!(primed.first(130, false), 96);
        assert_eq!(s.ideal().first(130, false), 96, "primed by s.prime()");
    }
}
