//! List queries as LaunchDarkly reads them: `limit` (default 20), `offset`,
//! `filter` (comma-separated `field:value`), `sort` (comma-separated, `-` for
//! descending), and the `_links` (`self`, `first`, `prev`, `next`, `last`) of a page.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::error::ApiError;

pub(crate) const DEFAULT_LIMIT: usize = 20;

#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub limit: usize,
    pub offset: usize,
    /// `(field, value)` pairs, field lowercased.
    pub filters: Vec<(String, String)>,
    /// `(field, descending)`.
    pub sort: Vec<(String, bool)>,
    raw_filter: Option<String>,
    raw_sort: Option<String>,
    pub expand: Vec<String>,
    /// Other parameters the page links carry along (e.g. `env`, `summary`).
    pub keep: Vec<(String, String)>,
}

fn parse_number(name: &str, value: &str) -> Result<usize, ApiError> {
    value.trim().parse::<usize>().map_err(|_| {
        ApiError::invalid_request(format!(
            "Invalid query parameter {name}: {value:?} is not a non-negative integer"
        ))
    })
}

impl ListQuery {
    /// Parses a raw query string. `filter_fields` and `sort_fields` are the fields
    /// the operation supports; anything else is a 400, as LaunchDarkly answers.
    pub fn parse(
        query: Option<&str>,
        max_limit: usize,
        filter_fields: &[&str],
        sort_fields: &[&str],
    ) -> Result<Self, ApiError> {
        Self::parse_with(
            query,
            max_limit,
            filter_fields,
            sort_fields,
            &["environments"],
        )
    }

    /// [`parse`](Self::parse) for an operation with its own `expand` fields.
    pub fn parse_with(
        query: Option<&str>,
        max_limit: usize,
        filter_fields: &[&str],
        sort_fields: &[&str],
        expand_fields: &[&str],
    ) -> Result<Self, ApiError> {
        let mut out = ListQuery {
            limit: DEFAULT_LIMIT.min(max_limit),
            ..ListQuery::default()
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    let limit = parse_number("limit", &value)?;
                    if limit == 0 {
                        return Err(ApiError::invalid_request(
                            "Invalid query parameter limit: must be at least 1",
                        ));
                    }
                    out.limit = limit.min(max_limit);
                }
                "offset" => out.offset = parse_number("offset", &value)?,
                "filter" => {
                    out.filters = parse_filter(&value, filter_fields)?;
                    out.raw_filter = Some(value.into_owned());
                }
                "sort" => {
                    out.sort = parse_sort(&value, sort_fields)?;
                    out.raw_sort = Some(value.into_owned());
                }
                "expand" => out.expand = parse_expand(&value, expand_fields)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The first page with the default limit (an expanded sub-list).
    pub fn first_page() -> Self {
        ListQuery {
            limit: DEFAULT_LIMIT,
            ..ListQuery::default()
        }
    }

    pub fn expands(&self, field: &str) -> bool {
        self.expand.iter().any(|e| e == field)
    }

    /// The values of filter `field`.
    pub fn filter(&self, field: &str) -> impl Iterator<Item = &str> {
        self.filters
            .iter()
            .filter(move |(f, _)| f == field)
            .map(|(_, v)| v.as_str())
    }

    /// `items[offset..offset+limit]`.
    pub fn page<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }

    fn href(&self, path: &str, offset: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(filter) = &self.raw_filter {
            query.append_pair("filter", filter);
        }
        for (name, value) in &self.keep {
            query.append_pair(name, value);
        }
        query.append_pair("limit", &self.limit.to_string());
        query.append_pair("offset", &offset.to_string());
        if let Some(sort) = &self.raw_sort {
            query.append_pair("sort", sort);
        }
        format!("{path}?{}", query.finish())
    }

    /// The `_links` of a page of `total` items at `path`: `self` always, `first` and
    /// `prev` unless this is the first page, `next` and `last` unless it is the last.
    pub fn links(&self, path: &str, total: usize) -> Map<String, Value> {
        let link =
            |offset: usize| json!({"href": self.href(path, offset), "type": "application/json"});
        let mut links = Map::new();
        links.insert("self".to_owned(), link(self.offset));
        if self.offset > 0 {
            links.insert("first".to_owned(), link(0));
            links.insert(
                "prev".to_owned(),
                link(self.offset.saturating_sub(self.limit)),
            );
        }
        if self.offset + self.limit < total {
            links.insert("next".to_owned(), link(self.offset + self.limit));
            let last = (total - 1) / self.limit * self.limit;
            links.insert("last".to_owned(), link(last));
        }
        links
    }
}

/// An `expand` list; LaunchDarkly refuses fields it cannot expand.
pub(crate) fn parse_expand(raw: &str, fields: &[&str]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for field in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !fields.contains(&field) {
            return Err(ApiError::invalid_request(format!(
                "Unsupported expand field {field:?} (supported: {})",
                fields.join(", ")
            )));
        }
        out.push(field.to_owned());
    }
    Ok(out)
}

/// The `expand` list of a single-resource query (no paging there).
pub(crate) fn expand_of(query: Option<&str>, fields: &[&str]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "expand" {
            out.extend(parse_expand(&value, fields)?);
        }
    }
    Ok(out)
}

fn parse_filter(raw: &str, fields: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((field, value)) = part.split_once(':') else {
            return Err(ApiError::invalid_request(format!(
                "Invalid filter {part:?}: expected field:value"
            )));
        };
        let field = field.trim();
        if !fields.contains(&field) {
            return Err(ApiError::invalid_request(format!(
                "Unsupported filter field {field:?} (supported: {})",
                fields.join(", ")
            )));
        }
        out.push((field.to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

fn parse_sort(raw: &str, fields: &[&str]) -> Result<Vec<(String, bool)>, ApiError> {
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, descending) = match part.strip_prefix('-') {
            Some(field) => (field, true),
            None => (part, false),
        };
        if !fields.contains(&field) {
            return Err(ApiError::invalid_request(format!(
                "Unsupported sort field {field:?} (supported: {})",
                fields.join(", ")
            )));
        }
        out.push((field.to_owned(), descending));
    }
    Ok(out)
}

/// The tags a `tags:` filter asks for. LaunchDarkly separates them with `+`; a `+`
/// sent unencoded arrives as a space, so both separate.
pub(crate) fn wanted_tags(value: &str) -> Vec<String> {
    value
        .split(['+', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether `tags` holds every one of `wanted` (case-insensitively).
pub(crate) fn has_all_tags(tags: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}

/// Case-insensitive substring match on name or key (the `query:` filter).
pub(crate) fn matches_query(needle: &str, key: &str, name: &str) -> bool {
    let needle = needle.to_lowercase();
    key.to_lowercase().contains(&needle) || name.to_lowercase().contains(&needle)
}

/// Sorts by the query's fields in order; `compare(field, a, b)` compares one field.
pub(crate) fn sort_by<T>(
    items: &mut [T],
    sort: &[(String, bool)],
    compare: impl Fn(&str, &T, &T) -> Ordering,
) {
    if sort.is_empty() {
        return;
    }
    items.sort_by(|a, b| {
        sort.iter()
            .map(|(field, descending)| {
                let order = compare(field, a, b);
                if *descending { order.reverse() } else { order }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_launchdarkly_first_and_last_page_rules() -> Result<(), String> {
        let q = ListQuery::parse(Some("limit=2&filter=tags%3Aa%2Bb"), 100, &["tags"], &[])
            .map_err(|e| e.message)?;
        let first = q.links("/p", 5);
        assert!(!first.contains_key("prev") && !first.contains_key("first"));
        assert_eq!(
            first["next"]["href"],
            "/p?filter=tags%3Aa%2Bb&limit=2&offset=2"
        );
        assert_eq!(
            first["last"]["href"],
            "/p?filter=tags%3Aa%2Bb&limit=2&offset=4"
        );
        let last = ListQuery {
            offset: 4,
            ..q.clone()
        }
        .links("/p", 5);
        assert!(!last.contains_key("next") && !last.contains_key("last"));
        assert_eq!(
            last["prev"]["href"],
            "/p?filter=tags%3Aa%2Bb&limit=2&offset=2"
        );
        Ok(())
    }

    #[test]
    fn bad_numbers_and_unknown_fields_are_invalid_requests() {
        for query in [
            "limit=abc",
            "limit=0",
            "offset=-1",
            "filter=color:red",
            "sort=-color",
        ] {
            let parsed = ListQuery::parse(Some(query), 100, &["tags", "query"], &["name"]);
            assert!(parsed.is_err(), "{query}");
        }
        let capped = ListQuery::parse(Some("limit=5000"), 100, &[], &[]).map(|q| q.limit);
        assert!(matches!(capped, Ok(100)));
        assert_eq!(wanted_tags("a+B c"), ["a", "b", "c"]);
    }
}
