//! The wholesaler service: registering and configuring wholesalers, their customer codes for
//! sites (set one by one or imported from CSV), and acknowledgements of orders.
//!
//! Every change that could unblock held orders (a wholesaler configured, a customer code set)
//! sends that wholesaler's held messages back to the queue in the same transaction; the outbox
//! worker translates them again. Must not: deliver anything itself (that is `integrations`).

mod import;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

pub use import::{CUSTOMER_CODE_COLUMNS, import_customer_codes};

use crate::authz::{self, Actor};
use crate::codes::{SiteCode, WholesalerId};
use crate::entities::{customer_code, order as order_e, site, wholesaler as wholesaler_e};
use crate::error::{DomainError, DomainResult};
use crate::order::OrderStatus;
use crate::store::{Store, fixed};
use crate::wholesaler::{AdapterConfig, CustomerCode, Wholesaler, WholesalerDraft, validate};

fn from_model(m: wholesaler_e::Model) -> DomainResult<Wholesaler> {
    let corrupt = |e: &dyn std::fmt::Display| DomainError::Corrupt(format!("wholesaler {}: {e}", m.id));
    Ok(Wholesaler {
        id: m.id.parse().map_err(|e| corrupt(&e))?,
        name: m.name.clone(),
        area: m
            .area
            .split_whitespace()
            .map(|p| p.parse().map_err(|e| corrupt(&e)))
            .collect::<DomainResult<_>>()?,
        adapter: crate::dispatch::adapter_of(&m)?,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
        updated_by: m.updated_by,
    })
}

/// Registers a wholesaler or changes its configuration (NATIONAL). A push wholesaler's secret
/// may be left out of a change to keep it. Releases the wholesaler's held orders.
pub async fn register(
    store: &Store,
    actor: &Actor,
    id: &WholesalerId,
    draft: &WholesalerDraft,
    now: DateTime<Utc>,
) -> DomainResult<Wholesaler> {
    authz::can_manage_wholesalers(actor)?;
    let tx = store.write().await?;
    let existing = wholesaler_e::Entity::find_by_id(id.as_str())
        .lock_exclusive()
        .one(&*tx)
        .await?;
    let details = validate(draft, existing.as_ref().and_then(|m| m.signing_secret.as_deref()))?;
    let area = details.area.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ");
    let (endpoint, secret) = match &details.adapter {
        AdapterConfig::HttpPush { endpoint, secret } => (Some(endpoint.clone()), Some(secret.clone())),
        _ => (None, None),
    };
    let model = wholesaler_e::ActiveModel {
        id: Set(id.as_str().to_owned()),
        name: Set(details.name.clone()),
        area: Set(area),
        adapter: Set(details.adapter.kind().as_str().to_owned()),
        endpoint: Set(endpoint),
        signing_secret: Set(secret),
        version: Set(existing.as_ref().map_or(1, |m| m.version + 1)),
        created_at: Set(existing.as_ref().map_or(now, |m| m.created_at)),
        updated_at: Set(now),
        updated_by: Set(actor.label()),
    };
    if existing.is_some() {
        wholesaler_e::Entity::update(model).exec(&*tx).await?;
    } else {
        wholesaler_e::Entity::insert(model).exec(&*tx).await?;
    }
    let released = crate::dispatch::release_held(&*tx, &[id.as_str().to_owned()], now).await?;
    let saved = wholesaler_e::Entity::find_by_id(id.as_str())
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("wholesaler", id))?;
    tx.commit().await?;
    tracing::info!(wholesaler = %id, adapter = %details.adapter.kind(), released, actor = %actor.label(), "wholesaler configured");
    from_model(saved)
}

/// Every wholesaler (any authenticated caller: names and areas are not secret; the API shows
/// the endpoint only to NATIONAL and the wholesaler itself).
pub async fn list(store: &Store) -> DomainResult<Vec<Wholesaler>> {
    wholesaler_e::Entity::find()
        .order_by_asc(wholesaler_e::Column::Id)
        .all(store.db())
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

/// One wholesaler.
pub async fn get(store: &Store, id: &WholesalerId) -> DomainResult<Wholesaler> {
    let m = wholesaler_e::Entity::find_by_id(id.as_str())
        .one(store.db())
        .await?
        .ok_or_else(|| DomainError::not_found("wholesaler", id))?;
    from_model(m)
}

/// One version of a site's customer code at a wholesaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCodeVersion {
    pub wholesaler: WholesalerId,
    pub site: SiteCode,
    pub customer_code: CustomerCode,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

fn version_from_model(m: customer_code::Model) -> DomainResult<CustomerCodeVersion> {
    let corrupt = |e: &dyn std::fmt::Display| DomainError::Corrupt(format!("customer code {}: {e}", m.id));
    Ok(CustomerCodeVersion {
        wholesaler: m.wholesaler_id.parse().map_err(|e| corrupt(&e))?,
        site: m.site_code.parse().map_err(|e| corrupt(&e))?,
        customer_code: CustomerCode::parse(&m.customer_code).map_err(|e| corrupt(&e))?,
        effective_from: m.effective_from,
        effective_to: m.effective_to,
        version: m.version,
        updated_at: m.updated_at,
        updated_by: m.updated_by,
    })
}

/// A customer code to set: valid from `effective_from` (a Japan date) up to, excluding,
/// `effective_to` or the next version's start.
#[derive(Debug, Clone)]
pub struct NewCustomerCode {
    pub wholesaler: WholesalerId,
    pub site: SiteCode,
    pub customer_code: String,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
}

/// What writing one version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Inserted,
    Updated,
    Unchanged,
}

/// Inserts or changes the version keyed (wholesaler, site, effective_from), in the caller's
/// transaction. The inputs are already checked.
pub(crate) async fn write_version<C: ConnectionTrait>(
    db: &C,
    v: &NewCustomerCode,
    code: &CustomerCode,
    existing: Option<&customer_code::Model>,
    by: &str,
    now: DateTime<Utc>,
) -> DomainResult<Written> {
    match existing {
        Some(m) if m.customer_code == code.as_str() && m.effective_to == v.effective_to => Ok(Written::Unchanged),
        Some(m) => {
            customer_code::Entity::update_many()
                .col_expr(customer_code::Column::CustomerCode, Expr::value(code.as_str()))
                .col_expr(customer_code::Column::EffectiveTo, Expr::value(v.effective_to))
                .col_expr(
                    customer_code::Column::Version,
                    Expr::col(customer_code::Column::Version).add(1),
                )
                .col_expr(customer_code::Column::UpdatedAt, Expr::value(now))
                .col_expr(customer_code::Column::UpdatedBy, Expr::value(by))
                .filter(customer_code::Column::Id.eq(m.id))
                .exec(db)
                .await?;
            Ok(Written::Updated)
        }
        None => {
            customer_code::Entity::insert(customer_code::ActiveModel {
                wholesaler_id: Set(v.wholesaler.as_str().to_owned()),
                site_code: Set(v.site.as_str().to_owned()),
                customer_code: Set(code.as_str().to_owned()),
                effective_from: Set(v.effective_from),
                effective_to: Set(v.effective_to),
                version: Set(1),
                updated_at: Set(now),
                updated_by: Set(by.to_owned()),
                ..Default::default()
            })
            .exec(db)
            .await?;
            Ok(Written::Inserted)
        }
    }
}

/// The checks shared by the mutation and the import: the code's form and the date range.
/// Errors are (field, reason).
pub(crate) fn check_version(v: &NewCustomerCode) -> Result<CustomerCode, (&'static str, String)> {
    let code = CustomerCode::parse(&v.customer_code).map_err(|e| ("customerCode", e))?;
    if let Some(to) = v.effective_to
        && to <= v.effective_from
    {
        return Err(("effectiveTo", "must be after effectiveFrom".to_owned()));
    }
    Ok(code)
}

/// Sets one version of a site's customer code (NATIONAL) and releases the wholesaler's held
/// orders. The wholesaler and the site must exist.
pub async fn set_customer_code(
    store: &Store,
    actor: &Actor,
    v: &NewCustomerCode,
    now: DateTime<Utc>,
) -> DomainResult<CustomerCodeVersion> {
    authz::can_manage_wholesalers(actor)?;
    let code = check_version(v).map_err(|(f, r)| DomainError::invalid(format!("input.{f}"), r))?;
    let tx = store.write().await?;
    if wholesaler_e::Entity::find_by_id(v.wholesaler.as_str())
        .one(&*tx)
        .await?
        .is_none()
    {
        return Err(DomainError::invalid("input.wholesaler", "no such wholesaler"));
    }
    let site_exists = site::Entity::find()
        .filter(Expr::col(site::Column::Code).eq(fixed(v.site.as_str())))
        .one(&*tx)
        .await?
        .is_some();
    if !site_exists {
        return Err(DomainError::invalid("input.site", "no such site"));
    }
    let key = customer_code::Entity::find()
        .filter(customer_code::Column::WholesalerId.eq(v.wholesaler.as_str()))
        .filter(Expr::col(customer_code::Column::SiteCode).eq(fixed(v.site.as_str())))
        .filter(customer_code::Column::EffectiveFrom.eq(v.effective_from));
    let existing = key.clone().lock_exclusive().one(&*tx).await?;
    write_version(&*tx, v, &code, existing.as_ref(), &actor.label(), now).await?;
    crate::dispatch::release_held(&*tx, &[v.wholesaler.as_str().to_owned()], now).await?;
    let saved = key
        .one(&*tx)
        .await?
        .ok_or_else(|| DomainError::not_found("customer code", v.site))?;
    tx.commit().await?;
    version_from_model(saved)
}

/// A wholesaler's customer codes, optionally of one site, by site then effective date
/// (NATIONAL and the wholesaler itself).
pub async fn customer_codes(
    store: &Store,
    actor: &Actor,
    wholesaler: &WholesalerId,
    site: Option<&SiteCode>,
    after_site: Option<&SiteCode>,
    first: u64,
) -> DomainResult<Vec<CustomerCodeVersion>> {
    authz::can_read_wholesaler_config(actor, wholesaler)?;
    let mut q = customer_code::Entity::find()
        .filter(customer_code::Column::WholesalerId.eq(wholesaler.as_str()))
        .order_by_asc(customer_code::Column::SiteCode)
        .order_by_asc(customer_code::Column::EffectiveFrom)
        .limit(first);
    if let Some(s) = site {
        q = q.filter(Expr::col(customer_code::Column::SiteCode).eq(fixed(s.as_str())));
    }
    if let Some(s) = after_site {
        q = q.filter(Expr::col(customer_code::Column::SiteCode).gt(fixed(s.as_str())));
    }
    q.all(store.db()).await?.into_iter().map(version_from_model).collect()
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckReport {
    /// Acknowledged now.
    pub acknowledged: Vec<String>,
    /// Acknowledged before (a repeated acknowledgement changes nothing).
    pub already: Vec<String>,
}

/// Most orders one acknowledgement may name.
pub const MAX_ACK: usize = 1000;

/// A wholesaler confirms receipt of its orders. All or nothing: an order that is not its own
/// (NOT_FOUND, never revealing another's) or not yet sent (CONFLICT) refuses the whole call.
/// Acknowledging again is harmless: reported as `already`, nothing changes.
pub async fn acknowledge(
    store: &Store,
    actor: &Actor,
    ids: &[String],
    reference: Option<&str>,
    now: DateTime<Utc>,
) -> DomainResult<AckReport> {
    let w = authz::acknowledging_wholesaler(actor)?;
    if ids.is_empty() || ids.len() > MAX_ACK {
        return Err(DomainError::invalid("orders", format!("name 1 to {MAX_ACK} orders")));
    }
    let reference = reference.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reference
        && (r.len() > 128 || r.chars().any(char::is_control))
    {
        return Err(DomainError::invalid(
            "reference",
            "must be at most 128 characters, no control characters",
        ));
    }
    let tx = store.write().await?;
    let rows: Vec<(String, String)> = order_e::Entity::find()
        .select_only()
        .columns([order_e::Column::Id, order_e::Column::Status])
        .filter(order_e::Column::Id.is_in(ids.to_vec()))
        .filter(order_e::Column::WholesalerId.eq(w.as_str()))
        .lock_exclusive()
        .into_tuple()
        .all(&*tx)
        .await?;
    let mut report = AckReport::default();
    for id in ids {
        let Some((_, status)) = rows.iter().find(|(i, _)| i == id) else {
            return Err(DomainError::not_found("order", id));
        };
        match status.parse::<OrderStatus>() {
            Ok(OrderStatus::Acknowledged) => report.already.push(id.clone()),
            Ok(OrderStatus::Sent) => report.acknowledged.push(id.clone()),
            _ => {
                return Err(DomainError::Conflict(format!(
                    "order {id} has not been sent yet ({status}); acknowledge it once received"
                )));
            }
        }
    }
    report.acknowledged.sort();
    report.acknowledged.dedup();
    report.already.sort();
    report.already.dedup();
    if !report.acknowledged.is_empty() {
        crate::dispatch::acknowledge_rows(&*tx, &report.acknowledged, now).await?;
        if let Some(r) = reference {
            order_e::Entity::update_many()
                .col_expr(order_e::Column::AckReference, Expr::value(r))
                .filter(order_e::Column::Id.is_in(report.acknowledged.clone()))
                .filter(order_e::Column::AckReference.is_null())
                .exec(&*tx)
                .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(wholesaler = %w, acknowledged = report.acknowledged.len(), already = report.already.len(), "orders acknowledged");
    Ok(report)
}
