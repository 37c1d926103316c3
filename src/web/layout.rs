//! What every page shares: the product name, the tenant, navigation, the
//! CSRF token for its forms and the flash messages; plus the small
//! formatting helpers templates use.

use chrono::{DateTime, Utc};

use super::{CustomerSession, Flash, PageResult};
use crate::app::AppState;
use crate::store::tenants::Tenant;

/// The navigation tab a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Settings,
    Environments,
    Activity,
    None,
}

/// The frame around every page (see `templates/base.html`).
pub struct Layout {
    pub product_name: String,
    /// Empty when the browser is not bound to a tenant (error pages).
    pub tenant_name: String,
    pub csrf_token: String,
    pub flashes: Vec<Flash>,
    pub nav: Nav,
    /// Extra scripts are never inline: pages that poll set this.
    pub refresh_seconds: Option<u32>,
    /// "Back to <product>": the vendor's app, when the connect link said
    /// where (checked against `LD_EAAS_RETURN_URL_ORIGINS`).
    pub return_url: Option<String>,
}

impl Layout {
    /// The frame of a page for the bound tenant. Takes the flashes: they are
    /// shown once.
    pub async fn for_tenant(
        state: &AppState,
        session: &CustomerSession,
        tenant: &Tenant,
        nav: Nav,
    ) -> PageResult<Self> {
        Ok(Self {
            product_name: state.config.product_name.clone(),
            tenant_name: tenant.display_name.clone(),
            csrf_token: session.csrf_token().await?,
            flashes: session.take_flashes().await?,
            nav,
            refresh_seconds: None,
            return_url: super::return_url::still_allowed(
                session.return_url().await?,
                &state.config.return_url_origins,
            ),
        })
    }

    /// Like [`Layout::for_tenant`] but leaves flashes for the next page: for
    /// the background refreshes of a page the person is already looking at.
    pub async fn for_tenant_quiet(
        state: &AppState,
        session: &CustomerSession,
        tenant: &Tenant,
        nav: Nav,
    ) -> PageResult<Self> {
        Ok(Self {
            product_name: state.config.product_name.clone(),
            tenant_name: tenant.display_name.clone(),
            csrf_token: session.csrf_token().await?,
            flashes: Vec::new(),
            nav,
            refresh_seconds: None,
            return_url: super::return_url::still_allowed(
                session.return_url().await?,
                &state.config.return_url_origins,
            ),
        })
    }

    /// The frame of an error page: no tenant, no navigation; the way back
    /// to the vendor's app if this browser has one.
    pub fn bare(product_name: &str, return_url: Option<String>) -> Self {
        Self {
            product_name: product_name.to_owned(),
            tenant_name: String::new(),
            csrf_token: String::new(),
            flashes: Vec::new(),
            nav: Nav::None,
            refresh_seconds: None,
            return_url,
        }
    }

    /// `aria-current` for a navigation link.
    pub fn current(&self, nav: Nav) -> &'static str {
        if self.nav == nav { "page" } else { "false" }
    }

    pub fn has_tenant(&self) -> bool {
        !self.tenant_name.is_empty()
    }
}

/// "3 minutes ago", "in 2 hours": coarse, for people.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (past, secs) = if secs >= 0 {
        (true, secs)
    } else {
        (false, -secs)
    };
    let amount = match secs {
        0..=44 => return if past { "just now" } else { "in a moment" }.to_owned(),
        45..=89 => "1 minute".to_owned(),
        90..=3_599 => format!("{} minutes", (secs + 30) / 60),
        3_600..=5_399 => "1 hour".to_owned(),
        5_400..=86_399 => format!("{} hours", (secs + 1_800) / 3_600),
        86_400..=129_599 => "1 day".to_owned(),
        _ => format!("{} days", (secs + 43_200) / 86_400),
    };
    if past {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// An absolute time for a `title` / `datetime` attribute.
pub fn iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An absolute time for people, in UTC.
pub fn human(at: DateTime<Utc>) -> String {
    at.format("%b %-d, %Y %H:%M UTC").to_string()
}

/// A duration in seconds for people: "2 days", "36 hours", "90 minutes".
pub fn duration(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if seconds > 0 && seconds % 86_400 == 0 {
        plural(seconds / 86_400, "day")
    } else if seconds > 0 && seconds % 3_600 == 0 {
        plural(seconds / 3_600, "hour")
    } else if seconds > 0 && seconds % 60 == 0 {
        plural(seconds / 60, "minute")
    } else {
        plural(seconds, "second")
    }
}

/// A small colour swatch as a data: URI image (the CSP forbids inline
/// styles; `img-src` allows data:). `hex` is six validated hex digits.
pub fn swatch(hex: &str) -> String {
    let hex: String = hex
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(6)
        .collect();
    let hex = if hex.len() == 6 {
        hex
    } else {
        "999999".to_owned()
    };
    format!(
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='16' height='16'%3E%3Crect width='16' height='16' rx='4' fill='%23{hex}'/%3E%3C/svg%3E"
    )
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(19_675);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - Duration::minutes(5), now), "5 minutes ago");
        assert_eq!(relative(now - Duration::hours(3), now), "3 hours ago");
        assert_eq!(relative(now + Duration::days(2), now), "in 2 days");
        assert_eq!(relative(now + Duration::seconds(60), now), "in 1 minute");
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        assert_eq!(duration(86_400), "1 day");
        assert_eq!(duration(3 * 86_400), "3 days");
        assert_eq!(duration(36 * 3_600), "36 hours");
        assert_eq!(duration(90 * 60), "90 minutes");
        assert_eq!(duration(61), "61 seconds");
    }

    #[test]
    fn swatches_only_carry_hex_digits() {
        assert!(swatch("ff00aa").contains("%23ff00aa"));
        assert!(swatch("'><script>").contains("%23999999"));
    }
}
