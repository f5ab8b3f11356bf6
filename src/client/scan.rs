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

use memchr::memchr2;

/// Deeper than this, the walk gives up (serde's own limit is 128; real chunks nest 4).
const MAX_DEPTH: usize = 32;

/// What one event is, when the walk is sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Text,
    Nothing,
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
    /// refuses). True when it holds text.
    fn text_field(&mut self) -> Step<bool> {
        if self.null() {
            return Ok(false);
        }
        match self.peek() {
            Some(b'"') => Ok(!self.string()?.0.is_empty()),
            _ => Err(Unsure),
        }
    }

    /// `delta`: an object (or `null`) whose text fields are read once each.
    fn delta(&mut self, depth: usize) -> Step<bool> {
        if self.null() {
            return Ok(false);
        }
        let mut seen = [false; 3];
        let mut text = false;
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
            text |= w.text_field()?;
            Ok(())
        })?;
        Ok(text)
    }

    /// One element of `choices`: an object whose `delta` and `text` are read once each.
    fn choice(&mut self, depth: usize) -> Step<bool> {
        let (mut seen_delta, mut seen_text, mut text) = (false, false, false);
        self.object(depth, |w, key| match key {
            b"delta" if !std::mem::replace(&mut seen_delta, true) => {
                text |= w.delta(depth + 1)?;
                Ok(())
            }
            b"text" if !std::mem::replace(&mut seen_text, true) => {
                text |= w.text_field()?;
                Ok(())
            }
            b"delta" | b"text" => Err(Unsure),
            _ => w.skip(depth + 1),
        })?;
        Ok(text)
    }
}

/// Classifies one event's data, or `None` when the full parser must decide.
pub fn classify(data: &[u8]) -> Option<Class> {
    let mut w = Walk { b: data, i: 0 };
    let (mut seen_choices, mut text) = (false, false);
    let walked = w.object(0, |w, key| match key {
        b"choices" if !std::mem::replace(&mut seen_choices, true) => w.array(1, |w| {
            if w.peek() != Some(b'{') {
                return Err(Unsure);
            }
            text |= w.choice(2)?;
            Ok(())
        }),
        // Left to the parser: usage and llama.cpp's timings are read there, errors reported,
        // and a second `choices` refused.
        b"choices" | b"usage" | b"error" | b"timings" => Err(Unsure),
        _ => w.skip(1),
    });
    if walked.is_err() || w.peek().is_some() {
        return None;
    }
    Some(if text { Class::Text } else { Class::Nothing })
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
        assert_eq!(c(vllm), Some(Text));
        let role = r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}"#;
        assert_eq!(c(role), Some(Nothing));
        let reasoning = r#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#;
        assert_eq!(c(reasoning), Some(Text));
        let sglang = r#"{"choices":[{"index":0,"delta":{"role":null,"content":null,"reasoning_content":"x","tool_calls":null},"finish_reason":null,"matched_stop":null}]}"#;
        assert_eq!(c(sglang), Some(Text));
        let completion = r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" word","logprobs":null,"finish_reason":null}]}"#;
        assert_eq!(c(completion), Some(Text));
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
        assert_eq!(c(finish), Some(Nothing));
        let logprobs = r#"{"choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.1}]}}]}"#;
        assert_eq!(c(logprobs), Some(Text));
        let spaced = "{ \"choices\" : [ { \"delta\" : { \"content\" : \"x\" } } ] }";
        assert_eq!(c(spaced), Some(Text));
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
            Some(Class::Text)
        );
        assert_eq!(
            c(r#"{"id":"a\"b","choices":[{"text":""}]}"#),
            Some(Class::Nothing)
        );
    }
}
