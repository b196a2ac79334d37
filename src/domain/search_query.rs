//! The search query language, parsed into a tree both search backends translate: words (all must
//! match), `"quoted phrases"`, `OR`, `-exclusion`, and field terms such as `action:invoice.*` or
//! `severity:error` (at least error). No I/O; the backends decide how text is matched.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::{Outcome, Severity};
use super::filter::ActionPattern;

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// The field names the language knows, as listed in error messages.
const FIELDS: &str = "action, actor, target, service, outcome, severity";
const OR: &str = "OR";

/// Every group must match.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchQuery {
    pub groups: Vec<Group>,
}

/// Terms joined by `OR`: at least one must match. A lone term is a group of one.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub any_of: Vec<Literal>,
}

/// A term, or (with a leading `-`) its absence.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub negated: bool,
    pub term: Term,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// One word; it may still be several tokens to a text analyzer (`ORD-98765`).
    Word(String),
    /// Words that must appear together, in this order.
    Phrase(String),
    Field(FieldTerm),
}

/// A condition on a structured field rather than on text.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldTerm {
    Action(ActionPattern),
    /// The actor's id or name, exactly.
    Actor(String),
    /// The target's id or name, exactly.
    Target(String),
    Service(String),
    Outcome(Outcome),
    /// At least this severe.
    MinSeverity(Severity),
}

/// A rejected query: what is wrong and where (a 1-based character position).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query must be at most {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("the query has nothing to search for")]
    Empty,
    #[error("{message} at position {position}")]
    Syntax { position: usize, message: String },
}

/// Where a hit stands in a PostgreSQL search's order (score, then newest): a keyset position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredPosition {
    pub score: f32,
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

impl SearchQuery {
    pub fn parse(input: &str) -> Result<Self, QueryError> {
        if input.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let tokens = tokenize(input)?;
        let mut groups: Vec<Group> = Vec::new();
        let mut pending_or: Option<usize> = None;
        for token in tokens {
            match token.kind {
                TokenKind::Or => {
                    if pending_or.is_some() || groups.is_empty() {
                        return Err(syntax(token.position, "OR needs a term on each side"));
                    }
                    pending_or = Some(token.position);
                }
                TokenKind::Literal(literal) => match (pending_or.take(), groups.last_mut()) {
                    (Some(_), Some(group)) => group.any_of.push(literal),
                    _ => groups.push(Group {
                        any_of: vec![literal],
                    }),
                },
            }
        }
        if let Some(position) = pending_or {
            return Err(syntax(position, "OR needs a term on each side"));
        }
        if groups.is_empty() {
            return Err(QueryError::Empty);
        }
        Ok(Self { groups })
    }

    /// Every literal, in query order.
    pub fn literals(&self) -> impl Iterator<Item = &Literal> {
        self.groups.iter().flat_map(|g| g.any_of.iter())
    }

    /// The words and phrases that count towards relevance and highlights (not the excluded ones).
    pub fn positive_text(&self) -> impl Iterator<Item = &Term> {
        self.literals()
            .filter(|l| !l.negated && l.term.is_text())
            .map(|l| &l.term)
    }
}

impl Term {
    pub fn is_text(&self) -> bool {
        matches!(self, Term::Word(_) | Term::Phrase(_))
    }
}

impl Group {
    /// Whether every term of the group is text (so a text index alone can answer it).
    pub fn is_text_only(&self) -> bool {
        self.any_of.iter().all(|l| l.term.is_text())
    }
}

struct Token {
    position: usize,
    kind: TokenKind,
}

enum TokenKind {
    Or,
    Literal(Literal),
}

fn syntax(position: usize, message: impl Into<String>) -> QueryError {
    QueryError::Syntax {
        position,
        message: message.into(),
    }
}

/// Splits the input into `OR`s and literals. Words and phrases without a letter or digit (`&`)
/// cannot match anything in either backend's index, so they are left out.
fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let negated = chars[i] == '-';
        if negated {
            i += 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(syntax(start + 1, "'-' must be followed by a term"));
            }
        }
        let term_start = i;
        let term = if chars[i] == '"' {
            let (text, end) = quoted(&chars, i)?;
            i = end;
            Some(Term::Phrase(text))
        } else {
            let word_end = until_space_or_quote(&chars, i);
            let word: String = chars[i..word_end].iter().collect();
            i = word_end;
            if !negated && word == OR {
                tokens.push(Token {
                    position: start + 1,
                    kind: TokenKind::Or,
                });
                continue;
            }
            match word.split_once(':') {
                Some((name, value)) if is_field_name(name) => {
                    let value_position = term_start + name.chars().count() + 2;
                    let value = if value.is_empty() && chars.get(i) == Some(&'"') {
                        let (text, end) = quoted(&chars, i)?;
                        i = end;
                        text
                    } else {
                        value.to_owned()
                    };
                    Some(Term::Field(field_term(name, &value, value_position)?))
                }
                _ => Some(Term::Word(word)),
            }
        };
        if i < chars.len() && !chars[i].is_whitespace() {
            return Err(syntax(i + 1, "expected a space"));
        }
        match term {
            Some(term) if !term.is_text() || has_alphanumeric(&term) => tokens.push(Token {
                position: start + 1,
                kind: TokenKind::Literal(Literal { negated, term }),
            }),
            _ => {}
        }
    }
    Ok(tokens)
}

/// A phrase starting at the quote at `open`: its text and the index after the closing quote.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), QueryError> {
    let close = chars[open + 1..]
        .iter()
        .position(|&c| c == '"')
        .map(|offset| open + 1 + offset)
        .ok_or_else(|| syntax(open + 1, "unterminated quote"))?;
    Ok((chars[open + 1..close].iter().collect(), close + 1))
}

fn until_space_or_quote(chars: &[char], from: usize) -> usize {
    chars[from..]
        .iter()
        .position(|c| c.is_whitespace() || *c == '"')
        .map_or(chars.len(), |offset| from + offset)
}

/// A word shaped like `name:…` with a lowercase name is a field term, known or not, so a typo
/// (`sevrity:error`) is reported instead of silently searching for text.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase())
}

fn field_term(name: &str, value: &str, position: usize) -> Result<FieldTerm, QueryError> {
    if value.trim().is_empty() {
        return Err(syntax(position, format!("{name}: needs a value")));
    }
    let value = value.to_owned();
    Ok(match name {
        "action" => FieldTerm::Action(ActionPattern::parse(&value)),
        "actor" => FieldTerm::Actor(value),
        "target" => FieldTerm::Target(value),
        "service" => FieldTerm::Service(value),
        "outcome" => FieldTerm::Outcome(Outcome::parse(&value).ok_or_else(|| {
            syntax(
                position,
                format!("unknown outcome {value:?} (one of success, failure, unknown)"),
            )
        })?),
        "severity" => FieldTerm::MinSeverity(Severity::parse(&value).ok_or_else(|| {
            syntax(
                position,
                format!(
                    "unknown severity {value:?} (one of debug, info, notice, warning, error, critical)"
                ),
            )
        })?),
        _ => {
            return Err(syntax(
                position - name.chars().count() - 1,
                format!(
                    "unknown field {name:?} (fields: {FIELDS}; quote the text to search for it as is)"
                ),
            ))
        }
    })
}

fn has_alphanumeric(term: &Term) -> bool {
    match term {
        Term::Word(text) | Term::Phrase(text) => text.chars().any(char::is_alphanumeric),
        Term::Field(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> Literal {
        Literal {
            negated: false,
            term: Term::Word(w.into()),
        }
    }

    fn groups(query: &str) -> Vec<Vec<Literal>> {
        SearchQuery::parse(query)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .groups
            .into_iter()
            .map(|g| g.any_of)
            .collect()
    }

    fn error(query: &str) -> (usize, String) {
        match SearchQuery::parse(query) {
            Err(QueryError::Syntax { position, message }) => (position, message),
            other => panic!("{query}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn words_must_all_match() {
        assert_eq!(
            groups("  invoice   paid "),
            vec![vec![word("invoice")], vec![word("paid")]]
        );
    }

    #[test]
    fn or_joins_neighbours_and_binds_tighter_than_and() {
        assert_eq!(
            groups("refund OR chargeback paid"),
            vec![vec![word("refund"), word("chargeback")], vec![word("paid")]]
        );
        assert_eq!(groups("a OR b OR c").len(), 1);
        // Lowercase "or" is just a word.
        assert_eq!(groups("a or b").len(), 3);
    }

    #[test]
    fn phrases_exclusions_and_fields() {
        let parsed = groups(
            r#""paid by alice" -refund action:invoice.* actor:"Alice Smith" target:ORD-98765 service:billing outcome:failure severity:ERROR -severity:critical"#,
        );
        let literals: Vec<Literal> = parsed.into_iter().flatten().collect();
        let field = |negated, f| Literal {
            negated,
            term: Term::Field(f),
        };
        assert_eq!(
            literals,
            vec![
                Literal {
                    negated: false,
                    term: Term::Phrase("paid by alice".into())
                },
                Literal {
                    negated: true,
                    term: Term::Word("refund".into())
                },
                field(
                    false,
                    FieldTerm::Action(ActionPattern::Prefix("invoice.".into()))
                ),
                field(false, FieldTerm::Actor("Alice Smith".into())),
                field(false, FieldTerm::Target("ORD-98765".into())),
                field(false, FieldTerm::Service("billing".into())),
                field(false, FieldTerm::Outcome(Outcome::Failure)),
                field(false, FieldTerm::MinSeverity(Severity::Error)),
                field(true, FieldTerm::MinSeverity(Severity::Critical)),
            ]
        );
    }

    #[test]
    fn words_without_letters_or_digits_are_left_out() {
        assert_eq!(
            groups("tom & jerry"),
            vec![vec![word("tom")], vec![word("jerry")]]
        );
        assert_eq!(SearchQuery::parse("& \"--\""), Err(QueryError::Empty));
        assert_eq!(SearchQuery::parse("   "), Err(QueryError::Empty));
    }

    #[test]
    fn positions_point_at_the_mistake() {
        assert_eq!(error(r#"paid "by alice"#).0, 6);
        assert_eq!(error("OR paid").0, 1);
        assert_eq!(error("paid OR").0, 6);
        assert_eq!(error("a OR OR b").0, 6);
        assert_eq!(error("paid - x").0, 6);
        assert_eq!(error("x sevrity:error").0, 3);
        assert_eq!(error("severity:loud").0, 10);
        assert_eq!(error("outcome:maybe").0, 9);
        assert_eq!(error("actor:").0, 7);
        assert_eq!(error(r#""a"b"#).0, 4);
        assert!(error("x sevrity:error").1.contains("unknown field"));
        // Characters, not bytes.
        assert_eq!(error("é OR").0, 3);
    }

    #[test]
    fn length_is_capped_in_bytes() {
        let long = "a ".repeat(MAX_QUERY_BYTES / 2 + 1);
        assert_eq!(SearchQuery::parse(&long), Err(QueryError::TooLong));
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_BYTES)).is_ok());
    }

    #[test]
    fn positive_text_skips_exclusions_and_fields() {
        let q = SearchQuery::parse("a -b \"c d\" service:x").unwrap();
        let text: Vec<&Term> = q.positive_text().collect();
        assert_eq!(
            text,
            vec![&Term::Word("a".into()), &Term::Phrase("c d".into())]
        );
    }
}
