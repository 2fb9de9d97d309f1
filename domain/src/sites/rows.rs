//! Conversions between stored rows and domain values. A row that does not parse is reported
//! as corrupt (an internal error), never passed on half-valid.

use sea_orm::ActiveValue::Set;

use super::Municipality;
use crate::entities::{municipality, site, site_history};
use crate::error::{DomainError, DomainResult};
use crate::site::{HistoryAction, Site, SiteDetails, SiteDraft, SiteHistoryEntry};

fn corrupt(what: &str, key: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Corrupt(format!("{what} {key}: {e}"))
}

pub fn site_from_model(m: site::Model) -> DomainResult<Site> {
    let draft = SiteDraft {
        name: m.name,
        name_kana: m.name_kana,
        kind: m.kind,
        municipality: m.municipality_code,
        postal_code: m.postal_code,
        address: m.address,
        phone: m.phone,
        latitude: m.latitude,
        longitude: m.longitude,
        cold_chain_role: m.cold_chain_role,
        freezer_class: m.freezer_class,
        base_site: m.base_site_code,
        receiving_days: m.receiving_days,
        receiving_hours: m.receiving_hours,
        delivery_notes: m.delivery_notes,
        wholesaler: m.wholesaler_id,
        products: m.products,
    };
    Ok(Site {
        code: m.code.parse().map_err(|e| corrupt("site", &m.code, e))?,
        details: SiteDetails::validate(&draft, "").map_err(|e| corrupt("site", &m.code, e))?,
        status: m.status.parse().map_err(|e| corrupt("site", &m.code, e))?,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub fn active_model(s: &Site) -> site::ActiveModel {
    let d = s.details.to_draft();
    site::ActiveModel {
        code: Set(s.code.as_str().to_owned()),
        code_kind: Set(format!("{:?}", s.code.kind())),
        name: Set(d.name),
        name_kana: Set(d.name_kana),
        kind: Set(d.kind),
        prefecture_code: Set(s.details.prefecture().as_str().to_owned()),
        municipality_code: Set(d.municipality),
        postal_code: Set(d.postal_code),
        address: Set(d.address),
        phone: Set(d.phone),
        latitude: Set(d.latitude),
        longitude: Set(d.longitude),
        cold_chain_role: Set(d.cold_chain_role),
        freezer_class: Set(d.freezer_class),
        base_site_code: Set(d.base_site),
        receiving_days: Set(d.receiving_days),
        receiving_hours: Set(d.receiving_hours),
        delivery_notes: Set(d.delivery_notes),
        wholesaler_id: Set(d.wholesaler),
        products: Set(d.products),
        status: Set(s.status.as_str().to_owned()),
        version: Set(s.version),
        created_at: Set(s.created_at),
        updated_at: Set(s.updated_at),
    }
}

pub fn municipality_from_model(m: municipality::Model) -> DomainResult<Municipality> {
    Ok(Municipality {
        code: m.code.parse().map_err(|e| corrupt("municipality", &m.code, e))?,
        prefecture: m
            .prefecture_code
            .parse()
            .map_err(|e| corrupt("municipality", &m.code, e))?,
        name: m.name,
        name_kana: m.name_kana,
    })
}

pub fn history_from_model(m: site_history::Model) -> DomainResult<SiteHistoryEntry> {
    Ok(SiteHistoryEntry {
        version: m.version,
        action: m
            .action
            .parse::<HistoryAction>()
            .map_err(|e| corrupt("history of", &m.site_code, e))?,
        actor: m.actor,
        changed_at: m.changed_at,
        changes: serde_json::from_str(&m.changes).map_err(|e| corrupt("history of", &m.site_code, e))?,
    })
}
