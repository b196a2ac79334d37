//! RFC 8785 (JSON Canonicalization Scheme) of a JSON value, written straight into a buffer:
//! object members sorted by the UTF-16 code units of their names, numbers as ECMAScript writes
//! them (`ryu-js`), strings with JSON's minimal escapes (as `serde_json` writes them), no
//! whitespace. Ours because the general crate parses every member name back into a value to
//! sort it, which made leaves several times dearer than the rest of sealing; the tests hold it
//! to that crate's output.

use serde_json::Value;

/// The canonical bytes of `value`. Numbers that are not finite cannot occur in a `Value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // Every JSON number is an IEEE double to RFC 8785 (validation keeps integers
            // within 2^53, where the two agree).
            let double = number.as_f64().unwrap_or(0.0);
            let mut buffer = ryu_js::Buffer::new();
            out.extend_from_slice(buffer.format(double).as_bytes());
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            // Names already sorted by code point (serde_json's map) differ from UTF-16 order
            // only around supplementary characters; sorting again settles it.
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (name, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string with only the escapes RFC 8785 requires: `"`, `\`, and control characters
/// (`\b \t \n \f \r` by name, the others as `\u00xx`).
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(1i64 << 53)..(1i64 << 53)).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            // Control characters, quotes, supplementary and private-use characters.
            "[\\x00-\\x1f\"\\\\\u{e000}\u{ffff}\u{10000}\u{1f600}a-z]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    "[\u{e000}\u{ffff}\u{10000}\u{1f600}a-zA-Z_\\x00-\\x1f]{0,6}",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Byte for byte what the general crate writes.
        #[test]
        fn agrees_with_serde_json_canonicalizer(value in json_value()) {
            let theirs = serde_json_canonicalizer::to_vec(&value).unwrap();
            prop_assert_eq!(String::from_utf8(to_vec(&value)).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn rfc_8785_examples() {
        // RFC 8785 §3.2.2, as its text writes it.
        let value: Value = serde_json::from_str(
            r#"{ "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                 "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                 "literals": [null, true, false] }"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&value)).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }
}
