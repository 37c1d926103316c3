//! How typed ids read from the text columns that hold them, so the
//! compile-checked queries can name them in overrides (`"tenant_id: TenantId"`).
//! A stored value that breaks the id's rule fails the read (a column decode
//! error), as the `try_from = "String"` row mapping did before.

use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, Postgres, Type};

use super::api_keys::OptionalTenant;
use crate::ids::{EphemeralId, TenantId};

macro_rules! text_id {
    ($name:ty) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <String as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <String as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let raw = <&str as Decode<Postgres>>::decode(value)?;
                Ok(<$name>::parse(raw)?)
            }
        }
    };
}

text_id!(TenantId);
text_id!(EphemeralId);

/// The nullable `api_keys.tenant_id`: null is the vendor backend's key.
impl Type<Postgres> for OptionalTenant {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for OptionalTenant {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(Option::<TenantId>::decode(value)?))
    }
}
