//! Reading observation codes from a request: an array (`["T","S"]`, `[5, 5, 10]`) or a
//! string (`"TTSS"`, `"5548825"` with FIAS category 10 written `0`). Refuses anything else
//! with a reason naming the first bad position; must never panic or allocate past the limit.

use serde_json::Value;

use super::fias::Category;
use super::st::StCode;

/// The most codes one request may carry (a 3 s FIAS coding of a four-hour recording is
/// 4 800): more is refused before anything is stored.
pub const MAX_CODES_PER_REQUEST: usize = 10_000;

/// Why the codes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodesError {
    /// Neither an array nor a string.
    #[error("`codes` must be an array or a string, not {0}")]
    Shape(&'static str),
    /// More than [`MAX_CODES_PER_REQUEST`].
    #[error("{0} codes in one request; at most {MAX_CODES_PER_REQUEST}")]
    TooMany(usize),
    /// A code that is not one of the method's.
    #[error("code {index} (`{got}`) is not {want}")]
    Bad {
        /// 0-based position in the request.
        index: usize,
        /// What was there.
        got: String,
        /// What the method takes.
        want: &'static str,
    },
}

const ST_WANT: &str = "T or S";
const FIAS_STR_WANT: &str = "a FIAS digit 0-9 (0 is category 10)";
const FIAS_ARR_WANT: &str = "a FIAS category 1-10";

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 20 {
        format!("{}…", s.chars().take(20).collect::<String>())
    } else {
        s
    }
}

/// The characters of a string form, whitespace skipped, with their positions among the codes.
fn string_codes<T>(
    s: &str,
    want: &'static str,
    read: impl Fn(char) -> Option<T>,
) -> Result<Vec<T>, CodesError> {
    let mut out = Vec::new();
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        if out.len() == MAX_CODES_PER_REQUEST {
            let total = s.chars().filter(|c| !c.is_whitespace()).count();
            return Err(CodesError::TooMany(total));
        }
        let index = out.len();
        out.push(read(c).ok_or_else(|| CodesError::Bad {
            index,
            got: c.to_string(),
            want,
        })?);
    }
    Ok(out)
}

fn array_codes<T>(
    a: &[Value],
    want: &'static str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, CodesError> {
    if a.len() > MAX_CODES_PER_REQUEST {
        return Err(CodesError::TooMany(a.len()));
    }
    a.iter()
        .enumerate()
        .map(|(index, v)| {
            read(v).ok_or_else(|| CodesError::Bad {
                index,
                got: show(v),
                want,
            })
        })
        .collect()
}

/// S-T codes: `"TTSS"` or `["T","T","S","S"]` (either case).
pub fn parse_st(v: &Value) -> Result<Vec<StCode>, CodesError> {
    match v {
        Value::String(s) => string_codes(s, ST_WANT, StCode::from_letter),
        Value::Array(a) => array_codes(a, ST_WANT, |v| {
            let s = v.as_str()?;
            let mut cs = s.chars();
            let c = cs.next()?;
            cs.next().is_none().then_some(())?;
            StCode::from_letter(c)
        }),
        other => Err(CodesError::Shape(kind(other))),
    }
}

/// FIAS codes: `"5548820"` (digit 0 is category 10) or `[5, 5, 4, 8, 8, 2, 10]`.
pub fn parse_fias(v: &Value) -> Result<Vec<Category>, CodesError> {
    match v {
        Value::String(s) => string_codes(s, FIAS_STR_WANT, |c| {
            let d = c.to_digit(10)?;
            Category::new(if d == 0 { 10 } else { d as u8 })
        }),
        Value::Array(a) => array_codes(a, FIAS_ARR_WANT, |v| {
            let n = v.as_u64()?;
            Category::new(u8::try_from(n).ok()?)
        }),
        other => Err(CodesError::Shape(kind(other))),
    }
}
