//! The REST operations ld-eaas uses (see `openapi-eaas-subset.json`; the flag
//! operations getFeatureFlags, getFeatureFlag and patchFeatureFlag are in the
//! full `openapi.json`).
//!
//! Each names its route (method + path template): LaunchDarkly's route-level rate
//! limits count per route, so that is the bucket the gate keys on.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::RequestAuth;
use super::client::LdClient;
use super::error::LdError;
use super::flags::{FeatureFlag, FlagError, Instruction, SemanticPatch};
use super::models::{CallerIdentity, DeleteOutcome, Environment, EnvironmentPost, Page, Project};

const CALLER_IDENTITY: &str = "GET /api/v2/caller-identity";
const LIST_PROJECTS: &str = "GET /api/v2/projects";
const GET_PROJECT: &str = "GET /api/v2/projects/{projectKey}";
const LIST_ENVIRONMENTS: &str = "GET /api/v2/projects/{projectKey}/environments";
const GET_ENVIRONMENT: &str = "GET /api/v2/projects/{projectKey}/environments/{environmentKey}";
const CREATE_ENVIRONMENT: &str = "POST /api/v2/projects/{projectKey}/environments";
const DELETE_ENVIRONMENT: &str =
    "DELETE /api/v2/projects/{projectKey}/environments/{environmentKey}";
const LIST_FLAGS: &str = "GET /api/v2/flags/{projectKey}";
const GET_FLAG: &str = "GET /api/v2/flags/{projectKey}/{featureFlagKey}";
const PATCH_FLAG: &str = "PATCH /api/v2/flags/{projectKey}/{featureFlagKey}";

/// The `Content-Type` of a semantic patch.
pub const SEMANTIC_PATCH_CONTENT_TYPE: &str =
    "application/json; domain-model=launchdarkly.semanticpatch";

/// Stop following pages after this many: a server that keeps sending `next` links
/// must not keep us busy forever.
const MAX_PAGES: usize = 1_000;

impl LdClient {
    /// `getCallerIdentity`: the account, token kind and scopes of a credential.
    /// The way to learn the account id (for rate limits) and to check a pasted token.
    pub async fn caller_identity(&self, auth: &RequestAuth) -> Result<CallerIdentity, LdError> {
        let url = self.url(&["api", "v2", "caller-identity"]);
        self.get_json(auth, CALLER_IDENTITY, url).await
    }

    /// `getProjects`, every page.
    pub async fn list_projects(&self, auth: &RequestAuth) -> Result<Vec<Project>, LdError> {
        let url = self.first_page(&["api", "v2", "projects"], None);
        self.list_all(auth, LIST_PROJECTS, url).await
    }

    /// `getProject`.
    pub async fn get_project(&self, auth: &RequestAuth, project: &str) -> Result<Project, LdError> {
        let url = self.url(&["api", "v2", "projects", project]);
        self.get_json(auth, GET_PROJECT, url).await
    }

    /// `getEnvironmentsByProject`, every page, keeping only environments that carry
    /// all of `tags` (none: every environment).
    ///
    /// The filter is LaunchDarkly's `filter=tags:a+b`; the `+` is sent encoded
    /// (`%2B`), as the API documentation requires. Tags must follow LaunchDarkly's tag
    /// rules (1-64 of `[a-zA-Z0-9_.-]`): anything else could change the filter's
    /// meaning (a `,` starts another filter), so it is refused before sending.
    pub async fn list_environments(
        &self,
        auth: &RequestAuth,
        project: &str,
        tags: &[&str],
    ) -> Result<Vec<Environment>, LdError> {
        let filter = tag_filter(tags)?;
        let url = self.first_page(
            &["api", "v2", "projects", project, "environments"],
            filter.as_deref(),
        );
        self.list_all(auth, LIST_ENVIRONMENTS, url).await
    }

    /// `getEnvironment`.
    pub async fn get_environment(
        &self,
        auth: &RequestAuth,
        project: &str,
        environment: &str,
    ) -> Result<Environment, LdError> {
        let url = self.url(&[
            "api",
            "v2",
            "projects",
            project,
            "environments",
            environment,
        ]);
        self.get_json(auth, GET_ENVIRONMENT, url).await
    }

    /// `postEnvironment`: creates (or, with `source`, clones) an environment.
    /// A taken key is `Conflict`; the caller decides whether the existing one is its own.
    pub async fn create_environment(
        &self,
        auth: &RequestAuth,
        project: &str,
        environment: &EnvironmentPost,
    ) -> Result<Environment, LdError> {
        let url = self.url(&["api", "v2", "projects", project, "environments"]);
        self.send(
            auth,
            CREATE_ENVIRONMENT,
            Method::POST,
            url,
            Some(environment),
        )
        .await?
        .json()
    }

    /// `deleteEnvironment`. A 404 is [`DeleteOutcome::AlreadyGone`]: deleting is
    /// idempotent, and a retried delete must not turn into a failure.
    pub async fn delete_environment(
        &self,
        auth: &RequestAuth,
        project: &str,
        environment: &str,
    ) -> Result<DeleteOutcome, LdError> {
        let url = self.url(&[
            "api",
            "v2",
            "projects",
            project,
            "environments",
            environment,
        ]);
        let answer = self
            .send(auth, DELETE_ENVIRONMENT, Method::DELETE, url, None::<&()>)
            .await?;
        match answer.status {
            status if status.is_success() => Ok(DeleteOutcome::Deleted),
            StatusCode::NOT_FOUND => Ok(DeleteOutcome::AlreadyGone),
            _ => Err(answer.into_error()),
        }
    }

    /// `getFeatureFlags`, every page: each flag with a summary of its
    /// configuration in `environment` (no rules or targets; use
    /// [`get_feature_flag`](Self::get_feature_flag) for those).
    pub async fn list_feature_flags(
        &self,
        auth: &RequestAuth,
        project: &str,
        environment: &str,
    ) -> Result<Vec<FeatureFlag>, LdError> {
        let mut url = self.first_page(&["api", "v2", "flags", project], None);
        url.query_pairs_mut().append_pair("env", environment);
        self.list_all(auth, LIST_FLAGS, url).await
    }

    /// `getFeatureFlag` with its full configuration in `environment` (rules,
    /// targets, variation ids). A 404 is [`FlagError::FlagNotFound`]; an answer
    /// without that environment is [`FlagError::EnvironmentNotFound`].
    pub async fn get_feature_flag(
        &self,
        auth: &RequestAuth,
        project: &str,
        flag: &str,
        environment: &str,
    ) -> Result<FeatureFlag, FlagError> {
        let mut url = self.url(&["api", "v2", "flags", project, flag]);
        url.query_pairs_mut().append_pair("env", environment);
        let answer = self
            .send(auth, GET_FLAG, Method::GET, url, None::<&()>)
            .await?;
        let found: FeatureFlag = flag_answer(answer, project, flag)?;
        if found.environment(environment).is_none() {
            return Err(FlagError::EnvironmentNotFound {
                project: project.to_owned(),
                environment: environment.to_owned(),
            });
        }
        Ok(found)
    }

    /// `patchFeatureFlag` with a semantic patch: `instructions` applied to the
    /// flag's configuration in `environment`, all or nothing. Answers the flag as
    /// it now is. A 404 is [`FlagError::FlagNotFound`]; a 400 (unknown
    /// environment or variation id, ...) is `Ld(InvalidRequest)` with
    /// LaunchDarkly's explanation.
    pub async fn patch_feature_flag_semantic(
        &self,
        auth: &RequestAuth,
        project: &str,
        flag: &str,
        environment: &str,
        instructions: &[Instruction],
    ) -> Result<FeatureFlag, FlagError> {
        let url = self.url(&["api", "v2", "flags", project, flag]);
        let body = SemanticPatch {
            environment_key: environment,
            instructions,
        };
        let answer = self
            .send_as(
                auth,
                PATCH_FLAG,
                Method::PATCH,
                url,
                Some(&body),
                Some(SEMANTIC_PATCH_CONTENT_TYPE),
            )
            .await?;
        flag_answer(answer, project, flag)
    }

    /// The LaunchDarkly UI page of an environment's settings, where its SDK keys are
    /// shown: `{base}/projects/{project}/settings/environments?env={env}&selected-env={env}`.
    pub fn environment_url(&self, project: &str, environment: &str) -> Url {
        let mut url = self.url(&["projects", project, "settings", "environments"]);
        url.query_pairs_mut()
            .append_pair("env", environment)
            .append_pair("selected-env", environment);
        url
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        auth: &RequestAuth,
        route: &'static str,
        url: Url,
    ) -> Result<T, LdError> {
        self.send(auth, route, Method::GET, url, None::<&()>)
            .await?
            .json()
    }

    fn first_page(&self, segments: &[&str], filter: Option<&str>) -> Url {
        let mut url = self.url(segments);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("limit", &self.page_size().to_string())
                .append_pair("offset", "0");
            if let Some(filter) = filter {
                query.append_pair("filter", filter);
            }
        }
        url
    }

    /// Fetches every page of a list: follows `_links.next` while LaunchDarkly sends
    /// one; without it, keeps going by `offset` while `totalCount` says more exist.
    async fn list_all<T: DeserializeOwned>(
        &self,
        auth: &RequestAuth,
        route: &'static str,
        first: Url,
    ) -> Result<Vec<T>, LdError> {
        let mut url = first;
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get_json(auth, route, url.clone()).await?;
            let received = page.items.len();
            items.extend(page.items);
            if received == 0 {
                return Ok(items);
            }
            let next_link = page.links.get("next").and_then(|link| link.href.as_deref());
            url = match (next_link, page.total_count) {
                (Some(href), _) => self.resolve_link(href)?,
                (None, Some(total)) if (items.len() as u64) < total => {
                    with_offset(&url, items.len())
                }
                (None, _) => return Ok(items),
            };
        }
        Err(LdError::Decode {
            message: format!("pagination did not end after {MAX_PAGES} pages"),
        })
    }
}

/// A flag from a 2xx answer; a 404 names the flag.
fn flag_answer(
    answer: super::client::Answer,
    project: &str,
    flag: &str,
) -> Result<FeatureFlag, FlagError> {
    if answer.status == StatusCode::NOT_FOUND {
        return Err(FlagError::FlagNotFound {
            project: project.to_owned(),
            flag: flag.to_owned(),
        });
    }
    Ok(answer.json()?)
}

/// `tags:a+b`, or `None` for no tags.
fn tag_filter(tags: &[&str]) -> Result<Option<String>, LdError> {
    for tag in tags {
        let valid = (1..=64).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(LdError::InvalidRequest {
                message: format!(
                    "tag filter {tag:?} is not a LaunchDarkly tag (1-64 of a-z A-Z 0-9 _ . -)"
                ),
            });
        }
    }
    Ok((!tags.is_empty()).then(|| format!("tags:{}", tags.join("+"))))
}

/// `url` with its `offset` replaced.
fn with_offset(url: &Url, offset: usize) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != "offset")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("offset", &offset.to_string());
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters_join_with_plus_and_refuse_what_could_change_their_meaning() {
        assert!(matches!(tag_filter(&[]), Ok(None)));
        assert!(matches!(tag_filter(&["a", "b.c"]), Ok(Some(f)) if f == "tags:a+b.c"));
        assert!(tag_filter(&["a,query:x"]).is_err());
        assert!(tag_filter(&["a+b"]).is_err());
        assert!(tag_filter(&[""]).is_err());
    }

    #[test]
    fn offsets_are_replaced_not_repeated() -> Result<(), url::ParseError> {
        let url = Url::parse("http://h/x?limit=20&offset=0&filter=tags%3Aa%2Bb")?;
        let next = with_offset(&url, 40);
        assert_eq!(next.query(), Some("limit=20&filter=tags%3Aa%2Bb&offset=40"));
        Ok(())
    }
}
