//! The hot path's classifier of stream events: is this chunk a token (text in
//! `choices[].delta.content` / `.reasoning` / `.reasoning_content`, or `choices[].text`), or
//! nothing to count? serde was about a third of the client's CPU, so events are walked once,
//! in place: strings are skipped with `memchr`, only the keys on the path to the text are
//! compared, nothing is decoded or allocated.
//!
//! It answers only where its answer is exactly the full parser's (`client::parse_event`) and
//! leaves the rest to it (`None`): a `usage`, `error` or `timings` key, a key with an escape,
//! a known key twice, a value of a shape the parser would refuse, anything that is not one
//! JSON object, nesting deeper than [`MAX_DEPTH`]. The fuzzer checks that agreement on every
//! event serde_json accepts (`fuzz/`, `crate::fuzz::sse`).
//!
//! A stream's chunks differ only in their text (vLLM, SGLang and the simulator repeat id,
//! model and every other field), so after one walk has found an event's single text field,
//! the bytes before and after that string are a [`Template`]: a later event with the same
//! bytes around a string without `"` or `\\` has the same structure, and only its string is
//! looked at — two memcmp and one memchr instead of a walk (the walk was 38 % of the client's
//! CPU at the ceiling).

use memchr::memchr2;

/// Deeper than this, the walk gives up (serde's own limit is 128; real chunks nest 4).
const MAX_DEPTH: usize = 32;

/// What one event is, when the walk is sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Text in `delta.content` or `text`.
    Content,
    /// Reasoning text only (`delta.reasoning` / `delta.reasoning_content`).
    Reasoning,
    Nothing,
}

/// What the walk found in one event's text fields.
#[derive(Default)]
struct Found {
    content: bool,
    reasoning: bool,
    /// Text fields holding a string (empty or not), and the value span of the last one.
    strings: u32,
    span: (usize, usize),
    span_is_reasoning: bool,
}

impl Found {
    fn class(&self) -> Class {
        match (self.content, self.reasoning) {
            (true, _) => Class::Content,
            (false, true) => Class::Reasoning,
            _ => Class::Nothing,
        }
    }
}

/// The bytes around the one text field of an event the walk verified, to recognise the
/// stream's later events without walking them.
#[derive(Debug, Clone)]
pub struct Template {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    reasoning: bool,
}

struct Walk<'a> {
    b: &'a [u8],
    i: usize,
}

/// Why the walk stops: it cannot be sure, and the full parser decides.
struct Unsure;

type Step<T> = Result<T, Unsure>;

impl<'a> Walk<'a> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Step<()> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            _ => Err(Unsure),
        }
    }

    /// A string at the cursor: its raw contents (between the quotes) and whether it holds an
    /// escape.
    fn string(&mut self) -> Step<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            let at = self.i + memchr2(b'"', b'\\', &self.b[self.i..]).ok_or(Unsure)?;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Ok((&self.b[start..at], escaped));
            }
            escaped = true;
            self.i = at + 2;
            if self.i > self.b.len() {
                return Err(Unsure);
            }
        }
    }

    /// Skips any value.
    fn skip(&mut self, depth: usize) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err(Unsure);
        }
        match self.peek().ok_or(Unsure)? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(depth, |w, _key| w.skip(depth + 1)),
            b'[' => self.array(depth, |w| w.skip(depth + 1)),
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.i;
                while self.b.get(self.i).is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                }) {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(Unsure);
                }
                Ok(())
            }
        }
    }

    /// Is the value at the cursor `null` (consumed if so)?
    fn null(&mut self) -> bool {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// An object: `each(walk, key)` reads every member's value. A key with an escape is
    /// unsure (the parser would unescape it and might see a name the walk does not).
    fn object(
        &mut self,
        _depth: usize,
        mut each: impl FnMut(&mut Self, &'a [u8]) -> Step<()>,
    ) -> Step<()> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let (key, escaped) = self.string()?;
            if escaped {
                return Err(Unsure);
            }
            self.eat(b':')?;
            each(self, key)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }

    fn array(&mut self, _depth: usize, mut each: impl FnMut(&mut Self) -> Step<()>) -> Step<()> {
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            each(self)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// A text field the parser reads as `Option<&str>`: `null` or a string (anything else it
    /// refuses). A string is noted in `found`.
    fn text_field(&mut self, found: &mut Found, reasoning: bool) -> Step<()> {
        if self.null() {
            return Ok(());
        }
        if self.peek() != Some(b'"') {
            return Err(Unsure);
        }
        let start = self.i + 1;
        let (raw, _) = self.string()?;
        found.strings += 1;
        found.span = (start, start + raw.len());
        found.span_is_reasoning = reasoning;
        if !raw.is_empty() {
            match reasoning {
                true => found.reasoning = true,
                false => found.content = true,
            }
        }
        Ok(())
    }

    /// `delta`: an object (or `null`) whose text fields are read once each.
    fn delta(&mut self, depth: usize, found: &mut Found) -> Step<()> {
        if self.null() {
            return Ok(());
        }
        let mut seen = [false; 3];
        self.object(depth, |w, key| {
            let slot = match key {
                b"content" => 0,
                b"reasoning" => 1,
                b"reasoning_content" => 2,
                _ => return w.skip(depth + 1),
            };
            // serde refuses a field given twice.
            if std::mem::replace(&mut seen[slot], true) {
                return Err(Unsure);
            }
            w.text_field(found, slot > 0)
        })
    }

    /// One element of `choices`: an object whose `delta` and `text` are read once each.
    fn choice(&mut self, depth: usize, found: &mut Found) -> Step<()> {
        let (mut seen_delta, mut seen_text) = (false, false);
        self.object(depth, |w, key| match key {
            b"delta" if !std::mem::replace(&mut seen_delta, true) => w.delta(depth + 1, found),
            b"text" if !std::mem::replace(&mut seen_text, true) => w.text_field(found, false),
            b"delta" | b"text" => Err(Unsure),
            _ => w.skip(depth + 1),
        })
    }
}

/// Walks one event: what it holds, or `None` when the full parser must decide.
fn walk(data: &[u8]) -> Option<Found> {
    let mut w = Walk { b: data, i: 0 };
    let mut seen_choices = false;
    let mut found = Found::default();
    let walked = w.object(0, |w, key| match key {
        b"choices" if !std::mem::replace(&mut seen_choices, true) => w.array(1, |w| {
            if w.peek() != Some(b'{') {
                return Err(Unsure);
            }
            w.choice(2, &mut found)
        }),
        // Left to the parser: usage and llama.cpp's timings are read there, errors reported,
        // and a second `choices` refused.
        b"choices" | b"usage" | b"error" | b"timings" => Err(Unsure),
        _ => w.skip(1),
    });
    if walked.is_err() || w.peek().is_some() {
        return None;
    }
    Some(found)
}

/// Classifies one event's data, or `None` when the full parser must decide.
pub fn classify(data: &[u8]) -> Option<Class> {
    walk(data).map(|f| f.class())
}

/// [`classify`], first against the stream's `template` (learnt here from the first event
/// with exactly one text field, relearnt when the shape changes).
pub fn classify_in_stream(data: &[u8], template: &mut Option<Template>) -> Option<Class> {
    if let Some(t) = template.as_ref() {
        let fits = data.len() >= t.prefix.len() + t.suffix.len()
            && data.starts_with(&t.prefix)
            && data.ends_with(&t.suffix);
        if fits {
            let text = &data[t.prefix.len()..data.len() - t.suffix.len()];
            if memchr2(b'"', b'\\', text).is_none() {
                return Some(match (text.is_empty(), t.reasoning) {
                    (true, _) => Class::Nothing,
                    (false, true) => Class::Reasoning,
                    (false, false) => Class::Content,
                });
            }
        }
    }
    let found = walk(data)?;
    if found.strings == 1 {
        let (a, b) = found.span;
        *template = Some(Template {
            prefix: data[..a].to_vec(),
            suffix: data[b..].to_vec(),
            reasoning: found.span_is_reasoning,
        });
    }
    Some(found.class())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<Class> {
        classify(s.as_bytes())
    }

    #[test]
    fn the_servers_chunks_are_classified() {
        use Class::*;
        let vllm = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" is"},"logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(c(vllm), Some(Content));
        let role = r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}"#;
        assert_eq!(c(role), Some(Nothing));
        let reasoning = r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#;
        assert_eq!(c(reasoning), Some(Reasoning));
        let sglang = r#"{"choices":[{"index":0,"delta":{"role":null,"content":null,"reasoning_content":"x","tool_calls":null},"finish_reason":null,"matched_stop":null}]}"#;
        assert_eq!(c(sglang), Some(Reasoning));
        let both = r#"{"choices":[{"delta":{"reasoning":"a","content":"b"}}]}"#;
        assert_eq!(c(both), Some(Content));
        let completion = r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" word","logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(c(completion), Some(Content));
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(c(finish), Some(Nothing));
        let logprobs = r#"{"choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.1}]}}]}"#;
        assert_eq!(c(logprobs), Some(Content));
        let spaced = "{ \"choices\" : [ { \"delta\" : { \"content\" : \"x\" } } ] }";
        assert_eq!(c(spaced), Some(Content));
    }

    #[test]
    fn it_is_sure_only_where_the_parser_would_agree() {
        // Text outside `choices[].delta`: not a token.
        assert_eq!(
            c(r#"{"choices":[{"deltz":{"content":"x"}}]}"#),
            Some(Class::Nothing)
        );
        assert_eq!(
            c(r#"{"x":{"content":"y"},"choices":[]}"#),
            Some(Class::Nothing)
        );
        // Left to the parser.
        for unsure in [
            r#"{"choices":[],"usage":{"completion_tokens":3}}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"choices":[{"delta":{"content":"x"}}],"timings":{"prompt_ms":1}}"#,
            r#"{"choices":[{"delta":{"cont\u0065nt":"x"}}]}"#,
            r#"{"choices":[{"delta":{"content":"x","content":"y"}}]}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":"content"}]}"#,
            r#"{"choices":[5]}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[{"delta":{"content":"x"}}]} trailing"#,
            r#"{"choices":[{"delta":{"content":"x""#,
            r#"[1,2]"#,
            "",
        ] {
            assert_eq!(c(unsure), None, "{unsure}");
        }
        // Escapes inside values are fine: a non-empty raw string is non-empty decoded.
        assert_eq!(
            c(r#"{"choices":[{"delta":{"content":"\n"}}]}"#),
            Some(Class::Content)
        );
        assert_eq!(
            c(r#"{"id":"a\"b","choices":[{"text":""}]}"#),
            Some(Class::Nothing)
        );
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;

    #[test]
    fn a_streams_later_chunks_are_read_through_its_template_and_only_where_it_fits() {
        let chunk = |text: &str| {
            format!(
                r#"{{"id":"c1","model":"m","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
            )
        };
        let mut t = None;
        assert_eq!(
            classify_in_stream(chunk(" one").as_bytes(), &mut t),
            Some(Class::Content)
        );
        assert!(t.is_some(), "learnt from the first chunk");
        assert_eq!(
            classify_in_stream(chunk(" two").as_bytes(), &mut t),
            Some(Class::Content)
        );
        assert_eq!(
            classify_in_stream(chunk("").as_bytes(), &mut t),
            Some(Class::Nothing)
        );
        // A quote or backslash in the text: the template cannot vouch, the walk decides.
        assert_eq!(
            classify_in_stream(chunk(r#"a\"b"#).as_bytes(), &mut t),
            Some(Class::Content)
        );
        assert_eq!(
            classify_in_stream(chunk(r#"x"},"deltz":{"content":"y"#).as_bytes(), &mut t),
            walk(chunk(r#"x"},"deltz":{"content":"y"#).as_bytes()).map(|f| f.class())
        );
        // Another shape (the final chunk): walked, and the template follows it.
        let last = r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(
            classify_in_stream(last.as_bytes(), &mut t),
            Some(Class::Nothing)
        );
        // Reasoning templates stay reasoning.
        let r = |text: &str| format!(r#"{{"choices":[{{"delta":{{"reasoning":"{text}"}}}}]}}"#);
        let mut t = None;
        assert_eq!(
            classify_in_stream(r("a").as_bytes(), &mut t),
            Some(Class::Reasoning)
        );
        assert_eq!(
            classify_in_stream(r("b").as_bytes(), &mut t),
            Some(Class::Reasoning)
        );
    }
}
