//! Pure helpers: SQL identifiers and literals, the queries the plugin sends,
//! times (`since`), step ids, file names, and reading tools' output.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Quotes one identifier for PostgreSQL: `orders` → `"orders"`, a `"`
/// inside doubled. An empty name or one with NUL is refused.
pub fn quote_ident(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("an identifier is empty".into());
    }
    if name.contains('\0') {
        return Err(format!("identifier `{name}` contains NUL"));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Quotes a possibly schema-qualified name: `public.orders` →
/// `"public"."orders"`. At most one dot.
pub fn quote_qualified(name: &str) -> Result<String, String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 {
        return Err(format!(
            "`{name}`: a table is `name` or `schema.name`, nothing longer"
        ));
    }
    let quoted = parts
        .iter()
        .map(|p| quote_ident(p).map_err(|e| format!("`{name}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(quoted.join("."))
}

/// Quotes a string literal: `it's` → `'it''s'`. NUL is refused.
pub fn quote_literal(text: &str) -> Result<String, String> {
    if text.contains('\0') {
        return Err("a literal contains NUL".into());
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

/// One query that returns the row count of every table as a JSON object.
pub fn counts_sql(tables: &[String]) -> Result<String, String> {
    let mut fields = Vec::with_capacity(tables.len());
    for table in tables {
        fields.push(format!(
            "{}, (SELECT count(*) FROM {})",
            quote_literal(table)?,
            quote_qualified(table)?
        ));
    }
    Ok(format!("SELECT json_build_object({})", fields.join(", ")))
}

/// One query that returns, per table, the rows whose `column` is after
/// `since_ms` and the sums of `sums[table]`'s columns over those rows:
/// `{"orders": {"rows": 3, "sums": {}}, ...}`.
pub fn data_loss_sql(
    tables: &[String],
    column: &str,
    sums: &BTreeMap<String, Vec<String>>,
    since_ms: i64,
) -> Result<String, String> {
    let since = format!("to_timestamp({since_ms}::double precision / 1000)");
    let column = quote_ident(column)?;
    let mut fields = Vec::with_capacity(tables.len());
    for table in tables {
        let from = format!("FROM {} WHERE {column} > {since}", quote_qualified(table)?);
        let mut sum_fields = Vec::new();
        for sum in sums.get(table).map(Vec::as_slice).unwrap_or_default() {
            sum_fields.push(format!(
                "{}, (SELECT coalesce(sum({}), 0) {from})",
                quote_literal(sum)?,
                quote_ident(sum)?
            ));
        }
        fields.push(format!(
            "{}, json_build_object('rows', (SELECT count(*) {from}), 'sums', json_build_object({}))",
            quote_literal(table)?,
            sum_fields.join(", ")
        ));
    }
    Ok(format!("SELECT json_build_object({})", fields.join(", ")))
}

/// The query that lists the applied migrations as a JSON array of text.
pub fn applied_sql(table: &str, column: &str) -> Result<String, String> {
    let column = quote_ident(column)?;
    Ok(format!(
        "SELECT coalesce(json_agg({column}::text ORDER BY {column}::text), '[]'::json) FROM {}",
        quote_qualified(table)?
    ))
}

/// The script that runs the down files in order, each followed by removing
/// its row from the migrations table, in one transaction (psql runs it with
/// `--single-transaction` and `ON_ERROR_STOP`). It first locks the table
/// and checks that every migration it reverts is still recorded, so a
/// concurrent change fails the whole script.
pub fn down_script(
    table: &str,
    column: &str,
    downs: &[(String, String)],
) -> Result<String, String> {
    let table = quote_qualified(table)?;
    let column = quote_ident(column)?;
    let ids = downs
        .iter()
        .map(|(id, _)| quote_literal(id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut script = format!(
        "LOCK TABLE {table} IN EXCLUSIVE MODE;\n\
         DO $backout$ BEGIN\n\
         IF (SELECT count(DISTINCT {column}::text) FROM {table} WHERE {column}::text IN ({list})) <> {n} THEN\n\
         RAISE EXCEPTION 'backout: the migrations table changed since it was read';\n\
         END IF;\n\
         END $backout$;\n",
        list = ids.join(", "),
        n = downs.len()
    );
    for ((id, sql), literal) in downs.iter().zip(&ids) {
        script.push_str(&format!("-- down: {id}\n{sql}\n;\n"));
        script.push_str(&format!(
            "DELETE FROM {table} WHERE {column}::text = {literal};\n"
        ));
    }
    Ok(script)
}

/// Reads `since`: epoch milliseconds, an RFC 3339 time, or a span before
/// `now_ms` such as `90m`, `1h`, `2d` (`s`, `m`, `h`, `d`).
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("`{text}` is too large for epoch milliseconds"));
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        let ms = at.unix_timestamp_nanos() / 1_000_000;
        return i64::try_from(ms).map_err(|_| format!("`{text}` is out of range"));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match digits.parse::<i64>() {
        Ok(n) if unit_ms > 0 => n
            .checked_mul(unit_ms)
            .and_then(|span| now_ms.checked_sub(span))
            .ok_or_else(|| format!("`{text}` is out of range")),
        _ => Err(format!(
            "`{text}` is not epoch milliseconds, an RFC 3339 time or a span like `1h`"
        )),
    }
}

/// Epoch milliseconds as RFC 3339 (UTC), for reports.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Epoch milliseconds as `YYYYmmddTHHMMSSZ`, for file names.
pub fn compact_time(ms: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

/// The run a step belongs to: the first segment of `RUN/PHASE/STEP/HOST#N`.
/// It names files, so only letters, digits, `-`, `_` and `.` (not leading)
/// are accepted.
pub fn run_id(step_id: &str) -> Result<String, String> {
    let run = step_id.split('/').next().unwrap_or_default();
    let ok = !run.is_empty()
        && !run.starts_with('.')
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(run.to_string())
    } else {
        Err(format!(
            "step id `{step_id}`: its run id cannot name a file (letters, digits, `-`, `_`, `.`)"
        ))
    }
}

/// A file name prefix from the plan: the same characters as a run id.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.starts_with('.')
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The backup's file name: `{prefix}{run}_{time}.dump`.
pub fn backup_file_name(prefix: &str, run: &str, now_ms: i64) -> String {
    format!("{prefix}{run}_{}.dump", compact_time(now_ms))
}

/// The marker a verified backup leaves for `migrate-down` of the same run.
pub fn marker_file_name(run: &str) -> String {
    format!("backout-backup-{run}.json")
}

/// Joins a directory and a file name with one `/`.
pub fn join(dir: &str, file: &str) -> String {
    format!("{}/{file}", dir.trim_end_matches('/'))
}

/// The entries of a `pg_restore --list` table of contents (lines that are
/// neither empty nor `;` comments).
pub fn toc_entries(listing: &str) -> usize {
    listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .count()
}

/// The hash in `sha256sum FILE`'s output.
pub fn parse_sha256sum(output: &str) -> Option<String> {
    let hash = output.split_whitespace().next()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hash.to_ascii_lowercase())
}

/// The secret name in `${secret:NAME}`, the only form a password may take
/// (a literal would be journaled with the plan).
pub fn secret_reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${secret:")?.strip_suffix('}')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("orders").unwrap(), "\"orders\"");
        assert_eq!(quote_ident("we\"ird").unwrap(), "\"we\"\"ird\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
        assert_eq!(
            quote_qualified("public.orders").unwrap(),
            "\"public\".\"orders\""
        );
        assert_eq!(
            quote_qualified("x\"; DROP TABLE t; --").unwrap(),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert!(quote_qualified("a.b.c").is_err());
        assert!(quote_qualified("a.").is_err());
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
    }

    #[test]
    fn queries_quote_every_name() {
        let sql = counts_sql(&["orders".into(), "public.profiles".into()]).unwrap();
        assert_eq!(
            sql,
            "SELECT json_build_object('orders', (SELECT count(*) FROM \"orders\"), \
             'public.profiles', (SELECT count(*) FROM \"public\".\"profiles\"))"
        );
        let sums = BTreeMap::from([("pay".to_string(), vec!["amount_cents".to_string()])]);
        let sql = data_loss_sql(&["pay".into()], "created_at", &sums, 1_500).unwrap();
        assert!(
            sql.contains("to_timestamp(1500::double precision / 1000)"),
            "{sql}"
        );
        assert!(sql.contains("coalesce(sum(\"amount_cents\"), 0)"), "{sql}");
        assert!(sql.contains("FROM \"pay\" WHERE \"created_at\" >"), "{sql}");
    }

    #[test]
    fn the_down_script_checks_then_reverts_in_order() {
        let downs = vec![
            ("003_c".to_string(), "DROP TABLE c".to_string()),
            ("002_b".to_string(), "DROP TABLE b;".to_string()),
        ];
        let script = down_script("schema_migrations", "version", &downs).unwrap();
        let c = script.find("DROP TABLE c").unwrap();
        let b = script.find("DROP TABLE b").unwrap();
        assert!(script.starts_with("LOCK TABLE \"schema_migrations\""));
        assert!(script.contains("IN ('003_c', '002_b')) <> 2"), "{script}");
        assert!(c < b);
        assert!(
            script.contains("DELETE FROM \"schema_migrations\" WHERE \"version\"::text = '003_c';")
        );
    }

    #[test]
    fn since_takes_epoch_ms_rfc3339_or_a_span() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_since("1699999999000", now), Ok(1_699_999_999_000));
        assert_eq!(parse_since("2023-11-14T22:13:20Z", now), Ok(now));
        assert_eq!(parse_since("2023-11-14T23:13:20+01:00", now), Ok(now));
        assert_eq!(parse_since("1h", now), Ok(now - 3_600_000));
        assert_eq!(parse_since("90m", now), Ok(now - 5_400_000));
        assert_eq!(parse_since("2d", now), Ok(now - 172_800_000));
        for bad in ["", "deploy", "1w", "h", "2023-11-14", "-5"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
        assert_eq!(rfc3339(now), "2023-11-14T22:13:20Z");
        assert_eq!(compact_time(now), "20231114T221320Z");
    }

    #[test]
    fn run_ids_and_file_names() {
        assert_eq!(run_id("r-17/database/backup/db-1#1"), Ok("r-17".into()));
        assert!(run_id("../x/y").is_err());
        assert!(run_id("/database").is_err());
        assert!(run_id("a b/c").is_err());
        assert_eq!(
            backup_file_name("emergency_rollback_", "r-17", 1_700_000_000_000),
            "emergency_rollback_r-17_20231114T221320Z.dump"
        );
        assert_eq!(marker_file_name("r-17"), "backout-backup-r-17.json");
        assert_eq!(join("/backups/", "x"), "/backups/x");
        assert!(valid_prefix("emergency_rollback_"));
        assert!(!valid_prefix("../x"));
        assert!(!valid_prefix("a/b"));
    }

    #[test]
    fn tool_output_is_read() {
        let listing = ";\n; Archive created at ...\n;\n215; 1259 16386 TABLE public orders app\n216; 1259 16390 TABLE public profiles app\n\n";
        assert_eq!(toc_entries(listing), 2);
        let hash = "a".repeat(64);
        assert_eq!(
            parse_sha256sum(&format!("{hash}  /backups/x.dump\n")),
            Some(hash)
        );
        assert_eq!(parse_sha256sum("sha256sum: x: No such file"), None);
        assert_eq!(
            secret_reference("${secret:DB_PASSWORD}"),
            Some("DB_PASSWORD")
        );
        assert_eq!(secret_reference("hunter2"), None);
        assert_eq!(secret_reference("${secret:A}x"), None);
        assert_eq!(secret_reference("${secret:}"), None);
    }
}
