//! Migration tooling for account linking: importing pre-linked identities (CSV or JSON) and
//! exporting them, all or nothing.
//!
//! A row names an identity at a connector (`connector_id`, `upstream_id`) and the existing user
//! it belongs to, by `sub` or by `email` (the one user whose linked identity has that verified
//! email). Exported rows carry `sub`, so an export can be imported elsewhere as it is.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::identity::Claims;
use crate::store::{IdentityLink, StorageError, Store};
use crate::types::{ConnectorId, Subject};

/// One row of an import or export.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRow {
    /// The connector the identity belongs to.
    pub connector_id: String,
    /// The user's id at that connector.
    pub upstream_id: String,
    /// The Keybridge user, by subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The Keybridge user, by verified email; also the identity's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether that email is verified (export only; imports record it unverified until the first login).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
}

/// A row and the line it came from.
#[derive(Clone, Debug)]
pub struct NumberedRow {
    /// 1-based line.
    pub line: usize,
    /// The row.
    pub row: LinkRow,
}

/// Parses CSV with a header line (`connector_id,upstream_id,sub,email`, any order) or JSON (an
/// array of objects, or one object per line). Every problem is reported, with its line.
pub fn parse(text: &str) -> Result<Vec<NumberedRow>, Vec<String>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        parse_json_array(text)
    } else if trimmed.starts_with('{') {
        parse_json_lines(text)
    } else {
        parse_csv(text)
    }
}

/// The line of the first non-blank character at or after `offset`.
fn line_of_record(text: &str, offset: usize) -> usize {
    let skip = text.as_bytes().iter().skip(offset).take_while(|b| matches!(b, b'\n' | b'\r')).count();
    line_of(text, offset + skip)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|b| **b == b'\n').count() + 1
}

fn parse_json_array(text: &str) -> Result<Vec<NumberedRow>, Vec<String>> {
    let raws: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| vec![format!("line {}: not a JSON array of objects: {e}", e.line())])?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for raw in raws {
        let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        let line = line_of(text, offset);
        match serde_json::from_str::<LinkRow>(raw.get()) {
            Ok(row) => rows.push(NumberedRow { line, row }),
            Err(e) => problems.push(format!("line {line}: {e}")),
        }
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

fn parse_json_lines(text: &str) -> Result<Vec<NumberedRow>, Vec<String>> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LinkRow>(l) {
            Ok(row) => rows.push(NumberedRow { line: i + 1, row }),
            Err(e) => problems.push(format!("line {}: {e}", i + 1)),
        }
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

fn parse_csv(text: &str) -> Result<Vec<NumberedRow>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| vec![format!("line 1: {e}")])?.clone();
    let known = ["connector_id", "upstream_id", "sub", "email", "email_verified"];
    let mut problems: Vec<String> = headers
        .iter()
        .filter(|h| !known.contains(h))
        .map(|h| format!("line 1: unknown column {h:?} (columns: {})", known.join(", ")))
        .collect();
    for required in ["connector_id", "upstream_id"] {
        if !headers.iter().any(|h| h == required) {
            problems.push(format!("line 1: missing column {required:?}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_of(text, p.byte() as usize));
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_of_record(text, p.byte() as usize));
        let field = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        rows.push(NumberedRow {
            line,
            row: LinkRow {
                connector_id: field("connector_id").unwrap_or_default(),
                upstream_id: field("upstream_id").unwrap_or_default(),
                sub: field("sub"),
                email: field("email"),
                email_verified: field("email_verified").is_some_and(|v| v == "true"),
            },
        });
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

/// Checks every row against the store and returns the links to create, or every problem.
pub async fn plan(store: &dyn Store, rows: &[NumberedRow], now: UnixTime) -> Result<Vec<IdentityLink>, Vec<String>> {
    let mut problems = Vec::new();
    let mut links = Vec::new();
    let mut seen = HashSet::new();
    let fail = |problems: &mut Vec<String>, line: usize, msg: String| problems.push(format!("line {line}: {msg}"));
    for NumberedRow { line, row } in rows {
        let line = *line;
        if row.connector_id.is_empty() || row.upstream_id.is_empty() {
            fail(&mut problems, line, "connector_id and upstream_id are required".into());
            continue;
        }
        if !seen.insert((row.connector_id.clone(), row.upstream_id.clone())) {
            fail(
                &mut problems,
                line,
                format!("identity {}/{} appears twice in the file", row.connector_id, row.upstream_id),
            );
            continue;
        }
        let connector = ConnectorId::new(&row.connector_id);
        match store.find_link(&connector, &row.upstream_id).await {
            Ok(Some(existing)) => {
                fail(
                    &mut problems,
                    line,
                    format!(
                        "identity {}/{} is already linked to user {}",
                        row.connector_id, row.upstream_id, existing.subject
                    ),
                );
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(vec![format!("storage: {e}")]),
        }
        let subject = match (&row.sub, &row.email) {
            (Some(sub), _) => match store.get_user(&Subject::new(sub)).await {
                Ok(u) => u.subject,
                Err(StorageError::NotFound) => {
                    fail(&mut problems, line, format!("no user with sub {sub:?}"));
                    continue;
                }
                Err(e) => return Err(vec![format!("storage: {e}")]),
            },
            (None, Some(email)) => {
                let found = match store.find_links_by_email(email).await {
                    Ok(f) => f,
                    Err(e) => return Err(vec![format!("storage: {e}")]),
                };
                let mut subjects: Vec<Subject> =
                    found.into_iter().filter(|l| l.claims.email_verified).map(|l| l.subject).collect();
                subjects.sort();
                subjects.dedup();
                match subjects.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        fail(&mut problems, line, format!("no user has the verified email {email:?}"));
                        continue;
                    }
                    _ => {
                        fail(
                            &mut problems,
                            line,
                            format!("several users have the verified email {email:?}; name the user by sub"),
                        );
                        continue;
                    }
                }
            }
            (None, None) => {
                fail(&mut problems, line, "name the user by sub or by email".into());
                continue;
            }
        };
        links.push(IdentityLink {
            connector_id: connector,
            upstream_id: row.upstream_id.clone(),
            subject,
            claims: Claims { email: row.email.clone(), email_verified: false, ..Claims::default() },
            updated_at: now,
        });
    }
    if problems.is_empty() { Ok(links) } else { Err(problems) }
}

/// Every link, as importable rows.
pub async fn export(store: &dyn Store) -> Result<Vec<LinkRow>, StorageError> {
    let mut out = Vec::new();
    for user in store.list_users().await? {
        for l in store.list_links(&user.subject).await? {
            out.push(LinkRow {
                connector_id: l.connector_id.to_string(),
                upstream_id: l.upstream_id,
                sub: Some(user.subject.to_string()),
                email: l.claims.email,
                email_verified: l.claims.email_verified,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_carry_their_line_numbers() {
        let rows = parse("connector_id,upstream_id,email\nclerk,user_1,a@example.com\n\nclerk,user_2,b@example.com\n")
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].row.email.as_deref(), Some("b@example.com"));
    }

    #[test]
    fn malformed_files_list_every_problem_with_lines() {
        let err = parse("connector_id,upstream_id,colour\nclerk,u1,red\n").unwrap_err();
        assert_eq!(
            err,
            vec![
                "line 1: unknown column \"colour\" (columns: connector_id, upstream_id, sub, email, email_verified)"
                    .to_string()
            ]
        );
        let err =
            parse("[\n {\"connector_id\": \"c\", \"upstream_id\": \"1\"},\n {\"connector_id\": \"c\", \"oops\": 1}\n]")
                .unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].starts_with("line 3: unknown field `oops`"), "{err:?}");
        let err = parse("{\"connector_id\": \"c\", \"upstream_id\": \"1\"}\nnot json\n").unwrap_err();
        assert!(err[0].starts_with("line 2:"), "{err:?}");
    }
}
