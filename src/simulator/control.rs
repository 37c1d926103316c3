//! What tests, the demo and the CLI use to look inside a running simulator and to
//! steer it: the request log, faults, rate limits, accounts, tokens, projects,
//! flags and segments.

use anyhow::{Context, bail};

use super::Simulator;
use super::config::{ApiTokenGrant, OAuthClientRegistration, RateLimitConfig, Role};
use super::faults::Faults;
use super::flags::eval::{Evaluation, SimContext, evaluate};
use super::model::{SimEnvironment, SimFlag, SimFlagConfig, SimFlagState, SimProject};
use super::record::RecordedRequest;

impl Simulator {
    /// Every request so far, oldest first (the newest 10,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().log.entries()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Replaces the injected faults (`Faults::default()` turns them off).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults.set(faults);
    }

    /// Replaces the rate limits and starts every window afresh.
    pub fn set_rate_limits(&self, limits: RateLimitConfig) {
        self.shared.lock().limiter.set_config(limits);
    }

    /// Forgets every rate-limit count (as if every window just reset).
    pub fn reset_rate_limits(&self) {
        self.shared.lock().limiter.reset();
    }

    /// Adds an empty account (no-op if it exists).
    pub fn add_account(&self, account_id: &str) {
        self.shared.lock().ensure_account(account_id);
    }

    /// Registers an API access token (creating its account if needed).
    pub fn add_api_token(&self, grant: ApiTokenGrant) {
        let mut state = self.shared.lock();
        state.ensure_account(&grant.account_id);
        state.api_tokens.insert(grant.token.clone(), grant);
    }

    /// Registers another OAuth client.
    pub fn add_oauth_client(&self, client: OAuthClientRegistration) {
        let mut state = self.shared.lock();
        state.oauth.clients.insert(client.client_id.clone(), client);
    }

    /// Adds (or replaces) project `key` in `account` (created if needed) with
    /// environments `env_keys` (named after their keys, no flags).
    pub fn add_project(&self, account: &str, key: &str, name: &str, env_keys: &[&str]) {
        let mut project = SimProject::new(key, name);
        project.environments = env_keys
            .iter()
            .map(|k| SimEnvironment::new(k, k, "7F8C8D"))
            .collect();
        let mut state = self.shared.lock();
        let account = state.ensure_account(account);
        account.projects.retain(|p| p.key != key);
        account.projects.push(project);
    }

    /// Adds (or replaces, by key) an environment in an existing project; flags it
    /// has no configuration for get the default one (off).
    pub fn add_environment(
        &self,
        account: &str,
        project: &str,
        env: SimEnvironment,
    ) -> anyhow::Result<()> {
        self.with_project(account, project, |p| {
            let mut env = env;
            // Every environment has a configuration for every flag, as in LaunchDarkly.
            for flag in &p.flags {
                env.flags
                    .entry(flag.key.clone())
                    .or_insert_with(|| flag.default_config());
            }
            p.environments.retain(|e| e.key != env.key);
            p.environments.push(env);
        })
    }

    /// Sets a flag's on/off state, fallthrough variation and off variation in one
    /// environment (its rules and individual targets stay), defining the flag
    /// (boolean) on the project if it is new.
    pub fn set_flag(
        &self,
        account: &str,
        project: &str,
        env: &str,
        flag: &str,
        state: SimFlagState,
    ) -> anyhow::Result<()> {
        self.with_environment(account, project, env, |p, env_key| {
            if !p.flags.iter().any(|f| f.key == flag) {
                let defined = SimFlag::boolean(flag, flag);
                for e in &mut p.environments {
                    e.flags.insert(flag.to_owned(), defined.default_config());
                }
                p.flags.push(defined);
            }
            if let Some(e) = p.environment_mut(env_key) {
                let config = e
                    .flags
                    .entry(flag.to_owned())
                    .or_insert_with(|| SimFlagConfig::from(state.clone()));
                config.on = state.on;
                config.fallthrough_variation = state.fallthrough_variation;
                config.fallthrough_rollout = None;
                config.off_variation = state.off_variation;
                config.touch();
            }
        })
    }

    /// Replaces a flag's whole configuration in one environment; the flag must
    /// be defined on the project.
    pub fn set_flag_config(
        &self,
        account: &str,
        project: &str,
        env: &str,
        flag: &str,
        config: SimFlagConfig,
    ) -> anyhow::Result<()> {
        let mut result = Ok(());
        self.with_environment(account, project, env, |p, env_key| {
            if p.flag(flag).is_none() {
                result = Err(anyhow::anyhow!("no flag {flag:?} in project {project:?}"));
            } else if let Some(e) = p.environment_mut(env_key) {
                e.flags.insert(flag.to_owned(), config);
            }
        })?;
        result
    }

    /// Defines (or replaces, by key) a flag on a project; every environment
    /// without a configuration for it gets the default one (off).
    pub fn add_flag(&self, account: &str, project: &str, flag: SimFlag) -> anyhow::Result<()> {
        self.with_project(account, project, |p| {
            for env in &mut p.environments {
                env.flags
                    .entry(flag.key.clone())
                    .or_insert_with(|| flag.default_config());
            }
            p.flags.retain(|f| f.key != flag.key);
            p.flags.push(flag);
        })
    }

    /// A flag's definition (variations and their ids), if it exists.
    pub fn flag(&self, account: &str, project: &str, flag: &str) -> Option<SimFlag> {
        self.shared
            .lock()
            .account(account)
            .and_then(|a| a.project(project))
            .and_then(|p| p.flag(flag))
            .cloned()
    }

    /// What `flag` serves `context` in environment `env`, as LaunchDarkly would
    /// evaluate it (`None` if the flag, its configuration there or the
    /// environment is missing).
    pub fn evaluate(
        &self,
        account: &str,
        project: &str,
        env: &str,
        flag: &str,
        context: &SimContext,
    ) -> Option<Evaluation> {
        let state = self.shared.lock();
        let project = state.account(account)?.project(project)?;
        let definition = project.flag(flag)?;
        let config = project.environment(env)?.flags.get(flag)?;
        Some(evaluate(definition, config, context))
    }

    /// Sets how many segments an environment holds (cloning refuses over
    /// [`MAX_CLONE_SEGMENTS`]).
    pub fn set_segment_count(
        &self,
        account: &str,
        project: &str,
        env: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        self.with_environment(account, project, env, |p, env_key| {
            if let Some(e) = p.environment_mut(env_key) {
                e.segment_count = count;
            }
        })
    }

    /// The environments of a project, in creation order (empty if none or missing).
    pub fn environments(&self, account: &str, project: &str) -> Vec<SimEnvironment> {
        self.shared
            .lock()
            .account(account)
            .and_then(|a| a.project(project))
            .map(|p| p.environments.clone())
            .unwrap_or_default()
    }

    /// One environment, if it exists.
    pub fn environment(&self, account: &str, project: &str, env: &str) -> Option<SimEnvironment> {
        self.shared
            .lock()
            .account(account)
            .and_then(|a| a.project(project))
            .and_then(|p| p.environment(env))
            .cloned()
    }

    /// The projects of an account, in creation order.
    pub fn projects(&self, account: &str) -> Vec<SimProject> {
        self.shared
            .lock()
            .account(account)
            .map(|a| a.projects.clone())
            .unwrap_or_default()
    }

    /// Every OAuth access token issued so far now answers 401.
    pub fn expire_access_tokens(&self) {
        self.shared.lock().oauth.expire_access_tokens();
    }

    /// Every refresh token issued so far now answers `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().oauth.revoke_refresh_tokens();
    }

    /// How often `/trust/oauth/token` was called with this `grant_type`
    /// (`"authorization_code"`, `"refresh_token"`), failures included.
    pub fn token_endpoint_calls(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .oauth
            .token_calls
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// An OAuth access token for `account` as if `client_id` had been through the
    /// whole flow with `scope`: for tests that need a bearer token, not the flow.
    pub fn issue_access_token(&self, client_id: &str, account: &str, scope: Role) -> String {
        let ttl = self.shared.settings.access_token_ttl;
        let mut state = self.shared.lock();
        state.ensure_account(account);
        let grant = state.oauth.new_grant_id();
        state
            .oauth
            .issue(grant, client_id, account, scope, ttl, None)
            .access_token
    }

    fn with_project(
        &self,
        account: &str,
        project: &str,
        f: impl FnOnce(&mut SimProject),
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let p = state
            .account_mut(account)
            .and_then(|a| a.project_mut(project))
            .with_context(|| format!("no project {project:?} in account {account:?}"))?;
        f(p);
        Ok(())
    }

    fn with_environment(
        &self,
        account: &str,
        project: &str,
        env: &str,
        f: impl FnOnce(&mut SimProject, &str),
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let p = state
            .account_mut(account)
            .and_then(|a| a.project_mut(project))
            .with_context(|| format!("no project {project:?} in account {account:?}"))?;
        if p.environment(env).is_none() {
            bail!("no environment {env:?} in project {project:?}");
        }
        f(p, env);
        Ok(())
    }
}
