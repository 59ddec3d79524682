//! A Messages request read in one pass over the client's body: the fields the
//! translation ([`super::decode`]) reads, borrowed, and every other field as the
//! client wrote it, in the client's order (a repeated one: its last value).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::raw::Raw;

/// The fields of a Messages request the translation reads; the rest is in `extra`.
pub struct MessagesRequest<'a> {
    /// Always there once read (the reader refuses a request without it).
    pub model: Option<Raw<'a>>,
    pub messages: Option<Vec<InMessage<'a>>>,
    pub max_tokens: Option<u64>,
    pub system: Option<Raw<'a>>,
    pub stop_sequences: Option<Vec<Cow<'a, str>>>,
    pub stream: Option<bool>,
    pub tools: Option<Vec<Raw<'a>>>,
    pub tool_choice: Option<Raw<'a>>,
    pub metadata: Option<Raw<'a>>,
    pub thinking: Option<Raw<'a>>,
    pub output_config: Option<Raw<'a>>,
    pub context_management: Option<Raw<'a>>,
    pub extra: Vec<(Cow<'a, str>, Raw<'a>)>,
}

/// One of `messages`, its content as the client wrote it.
#[derive(Deserialize)]
pub struct InMessage<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    #[serde(borrow)]
    pub content: Raw<'a>,
}

/// A key of the request object (borrowed unless escaped).
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// A `stop_sequences` string.
#[derive(Deserialize)]
struct Stop<'a>(#[serde(borrow)] Cow<'a, str>);

/// The fields [`MessagesRequest`] reads.
const KNOWN: [&str; 12] = [
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "output_config",
    "context_management",
];

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = MessagesRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Messages request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = MessagesRequest {
            model: None,
            messages: None,
            max_tokens: None,
            system: None,
            stop_sequences: None,
            stream: None,
            tools: None,
            tool_choice: None,
            metadata: None,
            thinking: None,
            output_config: None,
            context_management: None,
            extra: Vec::new(),
        };
        // The fields read so far: a repeated one is refused, as a derived struct does.
        let mut seen: Vec<&'static str> = Vec::new();
        // `Option` fields: `null` reads as absent, as a derived struct reads it.
        while let Some(Key(key)) = map.next_key()? {
            if let Some(&name) = KNOWN.iter().find(|k| **k == key) {
                if seen.contains(&name) {
                    return Err(de::Error::duplicate_field(name));
                }
                seen.push(name);
            }
            match key.as_ref() {
                "model" => r.model = Some(map.next_value::<Raw<'de>>()?),
                "messages" => r.messages = map.next_value()?,
                "max_tokens" => r.max_tokens = map.next_value()?,
                "system" => r.system = map.next_value()?,
                "stop_sequences" => {
                    let stops: Option<Vec<Stop<'de>>> = map.next_value()?;
                    r.stop_sequences = stops.map(|s| s.into_iter().map(|Stop(s)| s).collect());
                }
                "stream" => r.stream = map.next_value()?,
                "tools" => r.tools = map.next_value()?,
                "tool_choice" => r.tool_choice = map.next_value()?,
                "metadata" => r.metadata = map.next_value()?,
                "thinking" => r.thinking = map.next_value()?,
                "output_config" => r.output_config = map.next_value()?,
                "context_management" => r.context_management = map.next_value()?,
                _ => {
                    let value: Raw<'de> = map.next_value()?;
                    // A repeated field: the last one counts, as in a JSON object.
                    match r.extra.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => r.extra.push((key, value)),
                    }
                }
            }
        }
        if r.model.is_none() {
            return Err(de::Error::missing_field("model"));
        }
        Ok(r)
    }
}

impl<'de> Deserialize<'de> for MessagesRequest<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}
