//! Who may do what, decided in one place as pure functions. The API applies these rules
//! (guards, row scopes, service calls); it never writes its own `if role == …`.
//!
//! Anonymous callers never reach these functions for protected data: the API refuses them as
//! UNAUTHENTICATED first. Everything here takes an authenticated [`Actor`].

use std::fmt;
use std::str::FromStr;

use crate::allocation::{AllocationOwner, ChildCode};
use crate::codes::{MunicipalityCode, PrefectureCode, SiteCode, WholesalerId};
use crate::site::{SiteField, SiteKind};
use crate::stock::StockArea;

/// The roles of the design brief, spelled as in tokens and GraphQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    National,
    Prefecture,
    Municipality,
    Site,
    Wholesaler,
    MedicalAssociation,
    Federation,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::National,
        Role::Prefecture,
        Role::Municipality,
        Role::Site,
        Role::Wholesaler,
        Role::MedicalAssociation,
        Role::Federation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::National => "NATIONAL",
            Role::Prefecture => "PREFECTURE",
            Role::Municipality => "MUNICIPALITY",
            Role::Site => "SITE",
            Role::Wholesaler => "WHOLESALER",
            Role::MedicalAssociation => "MEDICAL_ASSOCIATION",
            Role::Federation => "FEDERATION",
        }
    }
}

impl FromStr for Role {
    type Err = ActorError;
    fn from_str(s: &str) -> Result<Self, ActorError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(ActorError::UnknownRole)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: a role together with the scope it acts for. Built only from a
/// verified token's claims through [`Actor::from_claims`], so the scope always fits the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    National,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
    Site(SiteCode),
    Wholesaler(WholesalerId),
    /// A district medical association acts for a set of municipalities.
    MedicalAssociation(Vec<MunicipalityCode>),
    Federation(PrefectureCode),
    /// The operator running a `vsys` command on the server itself (imports, demo data).
    System,
}

/// Why a token's role/scope pair does not make an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    #[error("unknown role")]
    UnknownRole,
    #[error("role {0} needs a scope claim")]
    MissingScope(Role),
    #[error("role {0} takes no scope claim")]
    UnexpectedScope(Role),
    #[error("scope is not valid for role {role}: {reason}")]
    BadScope { role: Role, reason: String },
}

impl Actor {
    /// Maps a token's `role` and `scope` claims to an actor. Scopes: PREFECTURE and FEDERATION a
    /// 2-digit prefecture code, MUNICIPALITY a 6-digit municipality code, SITE a 10-character site
    /// code, WHOLESALER a wholesaler id, MEDICAL_ASSOCIATION space- or comma-separated
    /// municipality codes; NATIONAL none.
    pub fn from_claims(role: &str, scope: Option<&str>) -> Result<Actor, ActorError> {
        let role: Role = role.parse()?;
        let scope = scope.map(str::trim).filter(|s| !s.is_empty());
        let bad = |reason: String| ActorError::BadScope { role, reason };
        let need = || scope.ok_or(ActorError::MissingScope(role));
        Ok(match role {
            Role::National => match scope {
                None => Actor::National,
                Some(_) => return Err(ActorError::UnexpectedScope(role)),
            },
            Role::Prefecture => Actor::Prefecture(need()?.parse().map_err(|e| bad(format!("{e}")))?),
            Role::Federation => Actor::Federation(need()?.parse().map_err(|e| bad(format!("{e}")))?),
            Role::Municipality => {
                let m: MunicipalityCode = need()?.parse().map_err(|e| bad(format!("{e}")))?;
                if m.is_prefecture_level() {
                    return Err(bad("a prefecture's code is not a municipality".into()));
                }
                Actor::Municipality(m)
            }
            Role::Site => Actor::Site(need()?.parse().map_err(|e| bad(format!("{e}")))?),
            Role::Wholesaler => Actor::Wholesaler(need()?.parse().map_err(|e| bad(format!("{e}")))?),
            Role::MedicalAssociation => {
                let list = need()?
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<MunicipalityCode>().map_err(|e| bad(format!("{e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                Actor::MedicalAssociation(list)
            }
        })
    }

    /// The role, or `None` for the server's own operator.
    pub fn role(&self) -> Option<Role> {
        Some(match self {
            Actor::National => Role::National,
            Actor::Prefecture(_) => Role::Prefecture,
            Actor::Municipality(_) => Role::Municipality,
            Actor::Site(_) => Role::Site,
            Actor::Wholesaler(_) => Role::Wholesaler,
            Actor::MedicalAssociation(_) => Role::MedicalAssociation,
            Actor::Federation(_) => Role::Federation,
            Actor::System => return None,
        })
    }

    /// The scope as written in a token (codes joined by spaces for a medical association).
    pub fn scope_string(&self) -> Option<String> {
        match self {
            Actor::National | Actor::System => None,
            Actor::Prefecture(p) | Actor::Federation(p) => Some(p.to_string()),
            Actor::Municipality(m) => Some(m.to_string()),
            Actor::Site(s) => Some(s.to_string()),
            Actor::Wholesaler(w) => Some(w.to_string()),
            Actor::MedicalAssociation(ms) => Some(ms.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }

    /// How the actor is written in history and audit records: `ROLE:scope`.
    pub fn label(&self) -> String {
        match (self.role(), self.scope_string()) {
            (None, _) => "SYSTEM".into(),
            (Some(r), None) => r.as_str().into(),
            (Some(r), Some(s)) => format!("{r}:{s}"),
        }
    }
}

/// A refusal with the reason shown to the caller (no personal data, no stored values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

fn deny<T>(reason: impl Into<String>) -> Result<T, Denied> {
    Err(Denied(reason.into()))
}

/// Which rows of the site master an actor may read; services turn this into a WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteScope {
    All,
    Prefecture(PrefectureCode),
    Municipalities(Vec<MunicipalityCode>),
    Site(SiteCode),
    Wholesaler(WholesalerId),
}

/// The facts about a stored site that rules look at.
#[derive(Debug, Clone, Copy)]
pub struct SiteFacts<'a> {
    pub code: &'a SiteCode,
    pub municipality: &'a MunicipalityCode,
    pub kind: SiteKind,
    pub wholesaler: Option<&'a WholesalerId>,
}

impl SiteScope {
    pub fn contains(&self, site: &SiteFacts<'_>) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Prefecture(p) => site.municipality.prefecture() == *p,
            SiteScope::Municipalities(ms) => ms.contains(site.municipality),
            SiteScope::Site(c) => c == site.code,
            SiteScope::Wholesaler(w) => site.wholesaler == Some(w),
        }
    }
}

/// The rows of the site master an actor may read.
pub fn site_read_scope(actor: &Actor) -> SiteScope {
    match actor {
        Actor::National | Actor::System => SiteScope::All,
        Actor::Prefecture(p) | Actor::Federation(p) => SiteScope::Prefecture(*p),
        Actor::Municipality(m) => SiteScope::Municipalities(vec![*m]),
        Actor::MedicalAssociation(ms) => SiteScope::Municipalities(ms.clone()),
        Actor::Site(s) => SiteScope::Site(*s),
        Actor::Wholesaler(w) => SiteScope::Wholesaler(w.clone()),
    }
}

/// Reading one site: within the actor's scope.
pub fn can_read_site(actor: &Actor, site: &SiteFacts<'_>) -> Result<(), Denied> {
    if site_read_scope(actor).contains(site) {
        Ok(())
    } else {
        deny(format!("site {} is outside your scope", site.code))
    }
}

/// Registering a site (追加): NATIONAL any; a MUNICIPALITY only non-medical venues in its own area.
pub fn can_register_site(actor: &Actor, kind: SiteKind, municipality: &MunicipalityCode) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Municipality(m) if !kind.is_non_medical_venue() => {
            let _ = m;
            deny("a municipality registers only mass, workplace and health-centre venues")
        }
        Actor::Municipality(m) if m != municipality => deny("a municipality registers venues only in its own area"),
        Actor::Municipality(_) => Ok(()),
        _ => deny("only NATIONAL or the municipality may register sites"),
    }
}

/// Fields a site may change on its own record: how to reach it and what it handles, not where
/// it belongs (municipality, kind), its supply chain (cold chain, wholesaler) or its status.
const SITE_SELF_FIELDS: &[SiteField] = &[
    SiteField::Name,
    SiteField::NameKana,
    SiteField::PostalCode,
    SiteField::Address,
    SiteField::Phone,
    SiteField::Coordinates,
    SiteField::Delivery,
    SiteField::Products,
];

/// Fields a municipality sets on a medical site in its area: its supply chain.
const MUNICIPALITY_SUPPLY_FIELDS: &[SiteField] = &[SiteField::ColdChain, SiteField::Wholesaler];

/// Changing a site (変更). `current` is the stored site; `new_kind`/`new_municipality` are the
/// values after the change; `changed` lists the field groups that differ.
pub fn can_change_site(
    actor: &Actor,
    current: &SiteFacts<'_>,
    new_kind: SiteKind,
    new_municipality: &MunicipalityCode,
    changed: &[SiteField],
) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Site(own) if own == current.code => match changed.iter().find(|f| !SITE_SELF_FIELDS.contains(f)) {
            None => Ok(()),
            Some(f) => deny(format!("a site may not change its own {f}")),
        },
        Actor::Municipality(m) if m == current.municipality => {
            if new_municipality != m {
                return deny("a municipality may not move a site out of its area");
            }
            if current.kind.is_non_medical_venue() {
                if new_kind.is_non_medical_venue() {
                    Ok(())
                } else {
                    deny("a venue cannot be turned into a medical site by a municipality")
                }
            } else {
                match changed.iter().find(|f| !MUNICIPALITY_SUPPLY_FIELDS.contains(f)) {
                    None => Ok(()),
                    Some(f) => deny(format!("a medical site's {f} is changed by the site itself")),
                }
            }
        }
        _ => deny(format!("site {} is outside your scope", current.code)),
    }
}

/// Withdrawing a site (脱退): NATIONAL any; a MUNICIPALITY its own non-medical venues.
pub fn can_withdraw_site(actor: &Actor, site: &SiteFacts<'_>) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Municipality(m) if m == site.municipality && site.kind.is_non_medical_venue() => Ok(()),
        Actor::Municipality(m) if m == site.municipality => {
            deny("a medical site is withdrawn by NATIONAL on the site's request")
        }
        _ => deny(format!("site {} is outside your scope", site.code)),
    }
}

/// Bulk import of the site master: NATIONAL (or the server's operator).
pub fn can_import_sites(actor: &Actor) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        _ => deny("only NATIONAL imports the site master"),
    }
}

/// Stating a site's availability (予約受付状況) and how to book: the site itself; the
/// municipality for its own non-medical venues (which it runs); NATIONAL any. A municipality
/// does not speak for a clinic or hospital: a medical site states its own.
pub fn can_set_availability(actor: &Actor, site: &SiteFacts<'_>) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Site(own) if own == site.code => Ok(()),
        Actor::Municipality(m) if m == site.municipality && site.kind.is_non_medical_venue() => Ok(()),
        Actor::Municipality(m) if m == site.municipality => deny("a medical site states its own availability"),
        _ => deny(format!("site {} is outside your scope", site.code)),
    }
}

/// Keeping a venue's bookable slots (date, time, capacity, booked): the municipality that runs
/// the venue; NATIONAL. Not the venue's own SITE login: the municipality's booking system is the
/// one source of slot numbers. Only non-medical venues have slots (the service refuses others).
pub fn can_manage_slots(actor: &Actor, site: &SiteFacts<'_>) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Municipality(m) if m == site.municipality && site.kind.is_non_medical_venue() => Ok(()),
        Actor::Municipality(m) if m == site.municipality => deny("only non-medical venues have slots"),
        Actor::Site(own) if own == site.code => deny("a venue's slots are kept by its municipality"),
        _ => deny(format!("site {} is outside your scope", site.code)),
    }
}

/// Rounds and the national supply (step ❶): NATIONAL.
pub fn can_manage_rounds(actor: &Actor) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        _ => deny("only NATIONAL manages rounds and the national supply"),
    }
}

/// The target population of a municipality (the weight of the base share): NATIONAL for any,
/// a PREFECTURE for its own municipalities.
pub fn can_import_target_population(actor: &Actor, municipality: &MunicipalityCode) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Prefecture(p) if municipality.prefecture() == *p => Ok(()),
        Actor::Prefecture(p) => deny(format!("municipality {municipality} is outside prefecture {p}")),
        _ => deny("only NATIONAL or the prefecture imports target populations"),
    }
}

/// The allocation an actor owns: NATIONAL the national one (to prefectures), a PREFECTURE its
/// own (to municipalities), a MUNICIPALITY its own (to sites). Nobody else allocates.
pub fn own_allocation(actor: &Actor) -> Result<AllocationOwner, Denied> {
    match actor {
        Actor::National => Ok(AllocationOwner::National),
        Actor::Prefecture(p) => Ok(AllocationOwner::Prefecture(*p)),
        Actor::Municipality(m) => Ok(AllocationOwner::Municipality(*m)),
        _ => deny("only NATIONAL, a prefecture or a municipality has an allocation"),
    }
}

/// Proposing, editing and confirming an allocation: only its owner (and the server's operator,
/// for the deadline run and the demo).
pub fn can_edit_allocation(actor: &Actor, owner: &AllocationOwner) -> Result<(), Denied> {
    if *actor == Actor::System {
        return Ok(());
    }
    match own_allocation(actor) {
        Ok(own) if own == *owner => Ok(()),
        _ => deny(format!("only {owner} edits its allocation")),
    }
}

/// Confirming many municipalities' allocations at once (the deadline run): the operator only.
/// Through the API each municipality confirms its own.
pub fn can_confirm_in_bulk(actor: &Actor) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        _ => deny("only the operator confirms allocations in bulk"),
    }
}

/// What of an allocation an actor may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationAccess {
    /// Every line: the owner and the levels above it.
    Full,
    /// Only the line to the actor itself: what it was given by the level above.
    OwnLine(ChildCode),
}

/// Row scope of allocations: the owner and those above it see every line (a prefecture sees
/// its municipalities' allocations to sites); a child sees only its own line of its parent's
/// allocation (what it received). Wholesalers, medical associations and federations see none.
pub fn allocation_access(actor: &Actor, owner: &AllocationOwner) -> Result<AllocationAccess, Denied> {
    use AllocationOwner as O;
    let own = |c: ChildCode| Ok(AllocationAccess::OwnLine(c));
    match (actor, owner) {
        (Actor::National | Actor::System, _) => Ok(AllocationAccess::Full),
        (Actor::Prefecture(p), O::National) => own(ChildCode::Prefecture(*p)),
        (Actor::Prefecture(p), O::Prefecture(q)) if p == q => Ok(AllocationAccess::Full),
        (Actor::Prefecture(p), O::Municipality(m)) if m.prefecture() == *p => Ok(AllocationAccess::Full),
        (Actor::Municipality(m), O::Prefecture(p)) if m.prefecture() == *p => own(ChildCode::Municipality(*m)),
        (Actor::Municipality(m), O::Municipality(n)) if m == n => Ok(AllocationAccess::Full),
        (Actor::Site(s), O::Municipality(_)) => own(ChildCode::Site(*s)),
        _ => deny(format!("the allocation of {owner} is outside your scope")),
    }
}

/// Who submits a request (希望量) when this actor does: a prefecture, municipality or site for
/// itself, to the level above.
pub fn requester(actor: &Actor) -> Result<ChildCode, Denied> {
    match actor {
        Actor::Prefecture(p) => Ok(ChildCode::Prefecture(*p)),
        Actor::Municipality(m) => Ok(ChildCode::Municipality(*m)),
        Actor::Site(s) => Ok(ChildCode::Site(*s)),
        _ => deny("only a prefecture, a municipality or a site submits a request, for itself"),
    }
}

/// Which requests an actor may read: its own and those of the levels below it in its area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestScope {
    All,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
    Site(SiteCode),
}

pub fn request_read_scope(actor: &Actor) -> Result<RequestScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(RequestScope::All),
        Actor::Prefecture(p) => Ok(RequestScope::Prefecture(*p)),
        Actor::Municipality(m) => Ok(RequestScope::Municipality(*m)),
        Actor::Site(s) => Ok(RequestScope::Site(*s)),
        _ => deny("requests are read by NATIONAL, prefectures, municipalities and sites"),
    }
}

/// Which orders (発注指示) an actor may read; services turn this into a WHERE clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderScope {
    All,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
    Site(SiteCode),
    /// Orders addressed to this wholesaler, i.e. for the sites that designate it.
    Wholesaler(WholesalerId),
}

pub fn order_read_scope(actor: &Actor) -> Result<OrderScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(OrderScope::All),
        Actor::Prefecture(p) => Ok(OrderScope::Prefecture(*p)),
        Actor::Municipality(m) => Ok(OrderScope::Municipality(*m)),
        Actor::Site(s) => Ok(OrderScope::Site(*s)),
        Actor::Wholesaler(w) => Ok(OrderScope::Wholesaler(w.clone())),
        _ => deny("orders are read by NATIONAL, prefectures, municipalities, sites and wholesalers"),
    }
}

/// The outbox (messages waiting for partners): NATIONAL, for monitoring.
pub fn can_read_outbox(actor: &Actor) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        _ => deny("only NATIONAL reads the outbox"),
    }
}

/// Which outbox messages an actor may see and replay (parked messages): NATIONAL all, a
/// wholesaler those addressed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxScope {
    All,
    Wholesaler(WholesalerId),
}

pub fn outbox_scope(actor: &Actor) -> Result<OutboxScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(OutboxScope::All),
        Actor::Wholesaler(w) => Ok(OutboxScope::Wholesaler(w.clone())),
        _ => deny("parked messages are seen and replayed by NATIONAL and their wholesaler"),
    }
}

/// Registering and configuring wholesalers, and editing customer codes: NATIONAL.
pub fn can_manage_wholesalers(actor: &Actor) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        _ => deny("only NATIONAL registers wholesalers and edits customer codes"),
    }
}

/// A wholesaler's configuration (its push endpoint) and customer codes: NATIONAL and the
/// wholesaler itself. Every authenticated caller may read a wholesaler's name and area.
pub fn can_read_wholesaler_config(actor: &Actor, wholesaler: &WholesalerId) -> Result<(), Denied> {
    match actor {
        Actor::National | Actor::System => Ok(()),
        Actor::Wholesaler(w) if w == wholesaler => Ok(()),
        _ => deny("a wholesaler's configuration and customer codes are for NATIONAL and that wholesaler"),
    }
}

/// Acknowledging receipt of orders: the wholesaler they are addressed to, nobody else.
pub fn acknowledging_wholesaler(actor: &Actor) -> Result<&WholesalerId, Denied> {
    match actor {
        Actor::Wholesaler(w) => Ok(w),
        _ => deny("only the wholesaler an order is addressed to acknowledges it"),
    }
}

/// Whose stock an actor may read: a site its own; a municipality, prefecture or NATIONAL every
/// site in its area. Wholesalers, medical associations and federations have no business with
/// site stock (wholesalers see their deliveries, not what sites hold).
pub fn stock_read_scope(actor: &Actor) -> Result<SiteScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(SiteScope::All),
        Actor::Prefecture(p) => Ok(SiteScope::Prefecture(*p)),
        Actor::Municipality(m) => Ok(SiteScope::Municipalities(vec![*m])),
        Actor::Site(s) => Ok(SiteScope::Site(*s)),
        Actor::Wholesaler(_) | Actor::MedicalAssociation(_) | Actor::Federation(_) => {
            deny("stock is read by the site itself, its municipality, prefecture and NATIONAL")
        }
    }
}

/// Reading stock figures (balances, history, aggregates, reports, live changes) of an area:
/// the area must lie inside the actor's stock scope. A site reads only itself; a municipality
/// its sites and itself; a prefecture its municipalities, their sites and itself; NATIONAL all.
pub fn can_read_stock_area(actor: &Actor, area: &StockArea) -> Result<(), Denied> {
    let scope = stock_read_scope(actor)?;
    let inside = match (&scope, area) {
        (SiteScope::All, _) => true,
        (SiteScope::Prefecture(p), StockArea::Site { municipality, .. }) => municipality.prefecture() == *p,
        (SiteScope::Prefecture(p), StockArea::Municipality(m)) => m.prefecture() == *p,
        (SiteScope::Prefecture(p), StockArea::Prefecture(q)) => p == q,
        (SiteScope::Municipalities(ms), StockArea::Site { municipality, .. }) => ms.contains(municipality),
        (SiteScope::Municipalities(ms), StockArea::Municipality(m)) => ms.contains(m),
        (SiteScope::Site(s), StockArea::Site { code, .. }) => s == code,
        _ => false,
    };
    if inside {
        Ok(())
    } else {
        deny(format!("stock of {} is outside your scope", area.key()))
    }
}

/// Writing a site's stock (receipts, use, waste, expiry, reversals, stock reports, and a base
/// site's transfers to its satellites): the site itself (or the server's operator). Nobody
/// writes another site's stock, so every entry is booked by the site that holds the vials.
pub fn can_write_stock(actor: &Actor, site: &SiteCode) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Site(s) if s == site => Ok(()),
        Actor::Site(_) => deny(format!("a site records only its own stock, not {site}'s")),
        _ => deny("stock is recorded by the site that holds it"),
    }
}

/// Registering a delivery against an order: the wholesaler the order is addressed to (or the
/// server's operator). Nobody else speaks for a wholesaler's trucks.
pub fn can_register_delivery(actor: &Actor, addressed_to: &WholesalerId) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Wholesaler(w) if w == addressed_to => Ok(()),
        Actor::Wholesaler(_) => deny("this order is addressed to another wholesaler"),
        _ => deny("deliveries are registered by the wholesaler the order is addressed to"),
    }
}

/// Confirming receipt of a delivery (accepted and rejected vials): the receiving site, since
/// the accepted vials enter its stock (see [`can_write_stock`]).
pub fn can_confirm_receipt(actor: &Actor, site: &SiteCode) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Site(s) if s == site => Ok(()),
        Actor::Site(_) => deny("a site confirms only deliveries made to it"),
        _ => deny("receipt is confirmed by the site the delivery was made to"),
    }
}

/// Who reads deliveries: exactly who reads their orders ([`order_read_scope`]) — a wholesaler
/// its own, a site its own, a municipality or prefecture those of its sites, NATIONAL all.
pub fn delivery_read_scope(actor: &Actor) -> Result<OrderScope, Denied> {
    order_read_scope(actor)
}

// ---- dose records (VRS) ----

/// Recording doses: a SITE, always for itself (the site is the token's site, and the dose's
/// stock comes out of that site's lots). Nobody records a dose in another site's name.
pub fn dose_recorder(actor: &Actor) -> Result<SiteCode, Denied> {
    match actor {
        Actor::Site(s) => Ok(*s),
        _ => deny("doses are recorded by the site that gave them, with its SITE token"),
    }
}

/// Which dose records an actor may read: a site the records it recorded, a municipality its
/// residents' records. Prefectures and the nation see counts only ([`dose_count_scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoseScope {
    RecordedBy(SiteCode),
    Residents(MunicipalityCode),
}

pub fn dose_read_scope(actor: &Actor) -> Result<DoseScope, Denied> {
    match actor {
        Actor::Site(s) => Ok(DoseScope::RecordedBy(*s)),
        Actor::Municipality(m) => Ok(DoseScope::Residents(*m)),
        Actor::National | Actor::Prefecture(_) => deny("prefectures and the nation see dose counts, not records"),
        _ => deny("dose records are read by the site that recorded them and the person's municipality"),
    }
}

impl DoseScope {
    /// Whether a record (recorded by `site`, of a resident of `municipality`) is in scope.
    pub fn contains(&self, recorded_by: &SiteCode, municipality: &MunicipalityCode) -> bool {
        match self {
            DoseScope::RecordedBy(s) => s == recorded_by,
            DoseScope::Residents(m) => m == municipality,
        }
    }
}

/// Voiding or amending a dose record: the site that recorded it, or the person's municipality.
pub fn can_correct_dose(actor: &Actor, recorded_by: &SiteCode, municipality: &MunicipalityCode) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Site(s) if s == recorded_by => Ok(()),
        Actor::Municipality(m) if m == municipality => Ok(()),
        _ => deny("a dose record is corrected by the site that recorded it or the person's municipality"),
    }
}

/// Allowing a dose earlier than the product's minimum interval: the person's municipality.
pub fn can_override_interval(actor: &Actor, municipality: &MunicipalityCode) -> Result<(), Denied> {
    match actor {
        Actor::Municipality(m) if m == municipality => Ok(()),
        Actor::Municipality(_) => deny("only the person's own municipality allows an earlier dose"),
        _ => deny("an earlier dose is allowed by the person's municipality"),
    }
}

/// Whose dose counts an actor may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoseCountScope {
    All,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
    /// A site: the doses it recorded.
    Site(SiteCode),
}

/// Counts: the nation all, a prefecture its municipalities, a municipality its residents, a site
/// what it recorded. Wholesalers, medical associations and federations have no business here.
pub fn dose_count_scope(actor: &Actor) -> Result<DoseCountScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(DoseCountScope::All),
        Actor::Prefecture(p) => Ok(DoseCountScope::Prefecture(*p)),
        Actor::Municipality(m) => Ok(DoseCountScope::Municipality(*m)),
        Actor::Site(s) => Ok(DoseCountScope::Site(*s)),
        _ => deny("dose counts are read by sites, municipalities, prefectures and the nation"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MunicipalityCode {
        s.parse().expect("municipality")
    }
    fn sc(s: &str) -> SiteCode {
        s.parse().expect("site code")
    }

    #[test]
    fn deliveries_are_registered_by_the_addressee_and_confirmed_by_the_site() {
        let suzuken: WholesalerId = "suzuken".parse().expect("w");
        let medipal: WholesalerId = "medipal".parse().expect("w");
        let site = sc("1311010019");
        let other = sc("1311010027");
        let m131016 = Actor::Municipality(m("131016"));
        let cases: &[(Actor, bool, bool)] = &[
            (Actor::System, true, true),
            (Actor::National, false, false),
            (Actor::Prefecture("13".parse().expect("p")), false, false),
            (m131016, false, false),
            (Actor::Site(site), false, true),
            (Actor::Site(other), false, false),
            (Actor::Wholesaler(suzuken.clone()), true, false),
            (Actor::Wholesaler(medipal), false, false),
            (Actor::MedicalAssociation(vec![m("131016")]), false, false),
            (Actor::Federation("13".parse().expect("p")), false, false),
        ];
        for (actor, register, confirm) in cases {
            assert_eq!(
                can_register_delivery(actor, &suzuken).is_ok(),
                *register,
                "{actor:?} register"
            );
            assert_eq!(can_confirm_receipt(actor, &site).is_ok(), *confirm, "{actor:?} confirm");
        }
        assert!(delivery_read_scope(&Actor::MedicalAssociation(vec![m("131016")])).is_err());
        assert!(delivery_read_scope(&Actor::Federation("13".parse().expect("p"))).is_err());
    }

    #[test]
    fn claims_map_to_actors() {
        let ok: &[(&str, Option<&str>, Actor)] = &[
            ("NATIONAL", None, Actor::National),
            ("PREFECTURE", Some("13"), Actor::Prefecture("13".parse().expect("p"))),
            ("MUNICIPALITY", Some("131016"), Actor::Municipality(m("131016"))),
            ("SITE", Some("0110113719"), Actor::Site(sc("0110113719"))),
            (
                "WHOLESALER",
                Some("suzuken"),
                Actor::Wholesaler("suzuken".parse().expect("w")),
            ),
            (
                "MEDICAL_ASSOCIATION",
                Some("131016 131024"),
                Actor::MedicalAssociation(vec![m("131016"), m("131024")]),
            ),
            ("FEDERATION", Some("13"), Actor::Federation("13".parse().expect("p"))),
        ];
        for (role, scope, want) in ok {
            let got = Actor::from_claims(role, *scope).expect(role);
            assert_eq!(&got, want);
            assert_eq!(
                Actor::from_claims(role, got.scope_string().as_deref()).expect("round trip"),
                got
            );
        }
        let bad: &[(&str, Option<&str>, ActorError)] = &[
            ("ADMIN", None, ActorError::UnknownRole),
            ("national", None, ActorError::UnknownRole),
            ("NATIONAL", Some("13"), ActorError::UnexpectedScope(Role::National)),
            ("MUNICIPALITY", None, ActorError::MissingScope(Role::Municipality)),
            ("SITE", Some(""), ActorError::MissingScope(Role::Site)),
        ];
        for (role, scope, want) in bad {
            assert_eq!(&Actor::from_claims(role, *scope).expect_err(role), want);
        }
        for (role, scope) in [
            ("MUNICIPALITY", "131017"),
            ("MUNICIPALITY", "130001"),
            ("PREFECTURE", "48"),
            ("SITE", "0110113710"),
            ("MEDICAL_ASSOCIATION", "131016 999999"),
        ] {
            assert!(
                matches!(Actor::from_claims(role, Some(scope)), Err(ActorError::BadScope { .. })),
                "{role} {scope}"
            );
        }
    }

    /// The role × operation matrix for the site master. Each row: actor, operation, expected.
    #[test]
    fn site_matrix() {
        // A clinic in Chiyoda (Tokyo) supplied by suzuken, a mass venue in Chiyoda, and a
        // clinic in Sapporo (Hokkaido).
        let chiyoda = m("131016");
        let sapporo = m("011002");
        let clinic_code = sc("1311234569");
        let venue_code = SiteCode::assigned("13".parse().expect("p"), 1).expect("assigned");
        let far_code = sc("0110113719");
        let suzuken: WholesalerId = "suzuken".parse().expect("w");
        let clinic = SiteFacts {
            code: &clinic_code,
            municipality: &chiyoda,
            kind: SiteKind::Clinic,
            wholesaler: Some(&suzuken),
        };
        let venue = SiteFacts {
            code: &venue_code,
            municipality: &chiyoda,
            kind: SiteKind::MassVenue,
            wholesaler: None,
        };
        let far = SiteFacts {
            code: &far_code,
            municipality: &sapporo,
            kind: SiteKind::Clinic,
            wholesaler: None,
        };

        let national = Actor::National;
        let tokyo = Actor::Prefecture("13".parse().expect("p"));
        let chiyoda_m = Actor::Municipality(chiyoda);
        let sapporo_m = Actor::Municipality(sapporo);
        let clinic_a = Actor::Site(clinic_code);
        let wholesaler = Actor::Wholesaler(suzuken.clone());
        let other_wholesaler = Actor::Wholesaler("medipal".parse().expect("w"));
        let assoc = Actor::MedicalAssociation(vec![chiyoda]);
        let federation = Actor::Federation("13".parse().expect("p"));

        // read
        let reads: &[(&Actor, &SiteFacts<'_>, bool)] = &[
            (&national, &far, true),
            (&tokyo, &clinic, true),
            (&tokyo, &far, false),
            (&chiyoda_m, &venue, true),
            (&chiyoda_m, &far, false),
            (&sapporo_m, &clinic, false),
            (&clinic_a, &clinic, true),
            (&clinic_a, &venue, false),
            (&wholesaler, &clinic, true),
            (&wholesaler, &venue, false),
            (&other_wholesaler, &clinic, false),
            (&assoc, &clinic, true),
            (&assoc, &far, false),
            (&federation, &venue, true),
            (&federation, &far, false),
        ];
        for (actor, site, allowed) in reads {
            assert_eq!(
                can_read_site(actor, site).is_ok(),
                *allowed,
                "read {actor:?} {}",
                site.code
            );
        }

        // register
        let registers: &[(&Actor, SiteKind, &MunicipalityCode, bool)] = &[
            (&national, SiteKind::Clinic, &sapporo, true),
            (&chiyoda_m, SiteKind::MassVenue, &chiyoda, true),
            (&chiyoda_m, SiteKind::WorkplaceVenue, &chiyoda, true),
            (&chiyoda_m, SiteKind::HealthCentre, &chiyoda, true),
            (&chiyoda_m, SiteKind::Clinic, &chiyoda, false),
            (&chiyoda_m, SiteKind::MassVenue, &sapporo, false),
            (&tokyo, SiteKind::MassVenue, &chiyoda, false),
            (&clinic_a, SiteKind::MassVenue, &chiyoda, false),
            (&wholesaler, SiteKind::MassVenue, &chiyoda, false),
        ];
        for (actor, kind, muni, allowed) in registers {
            assert_eq!(
                can_register_site(actor, *kind, muni).is_ok(),
                *allowed,
                "register {actor:?} {kind} {muni}"
            );
        }

        // change
        use SiteField as F;
        type ChangeCase<'a> = (
            &'a Actor,
            &'a SiteFacts<'a>,
            SiteKind,
            &'a MunicipalityCode,
            &'a [SiteField],
            bool,
        );
        let changes: &[ChangeCase<'_>] = &[
            (
                &national,
                &clinic,
                SiteKind::Hospital,
                &sapporo,
                &[F::Kind, F::Municipality],
                true,
            ),
            (
                &clinic_a,
                &clinic,
                SiteKind::Clinic,
                &chiyoda,
                &[F::Phone, F::Delivery, F::Products],
                true,
            ),
            (&clinic_a, &clinic, SiteKind::Clinic, &chiyoda, &[F::Wholesaler], false),
            (&clinic_a, &clinic, SiteKind::Clinic, &chiyoda, &[F::ColdChain], false),
            (&clinic_a, &clinic, SiteKind::Hospital, &chiyoda, &[F::Kind], false),
            (&clinic_a, &venue, SiteKind::MassVenue, &chiyoda, &[F::Phone], false),
            (
                &chiyoda_m,
                &venue,
                SiteKind::MassVenue,
                &chiyoda,
                &[F::Name, F::Address, F::ColdChain],
                true,
            ),
            (&chiyoda_m, &venue, SiteKind::WorkplaceVenue, &chiyoda, &[F::Kind], true),
            (&chiyoda_m, &venue, SiteKind::Clinic, &chiyoda, &[F::Kind], false),
            (
                &chiyoda_m,
                &venue,
                SiteKind::MassVenue,
                &sapporo,
                &[F::Municipality],
                false,
            ),
            (
                &chiyoda_m,
                &clinic,
                SiteKind::Clinic,
                &chiyoda,
                &[F::Wholesaler, F::ColdChain],
                true,
            ),
            (&chiyoda_m, &clinic, SiteKind::Clinic, &chiyoda, &[F::Phone], false),
            (&sapporo_m, &venue, SiteKind::MassVenue, &chiyoda, &[F::Name], false),
            (&tokyo, &venue, SiteKind::MassVenue, &chiyoda, &[F::Name], false),
            (&wholesaler, &clinic, SiteKind::Clinic, &chiyoda, &[F::Delivery], false),
            (&assoc, &clinic, SiteKind::Clinic, &chiyoda, &[F::Name], false),
            (&federation, &clinic, SiteKind::Clinic, &chiyoda, &[F::Name], false),
        ];
        for (actor, site, kind, muni, fields, allowed) in changes {
            assert_eq!(
                can_change_site(actor, site, *kind, muni, fields).is_ok(),
                *allowed,
                "change {actor:?} {} {fields:?}",
                site.code
            );
        }

        // withdraw and import
        let withdraws: &[(&Actor, &SiteFacts<'_>, bool)] = &[
            (&national, &clinic, true),
            (&chiyoda_m, &venue, true),
            (&chiyoda_m, &clinic, false),
            (&sapporo_m, &venue, false),
            (&clinic_a, &clinic, false),
            (&tokyo, &venue, false),
        ];
        for (actor, site, allowed) in withdraws {
            assert_eq!(
                can_withdraw_site(actor, site).is_ok(),
                *allowed,
                "withdraw {actor:?} {}",
                site.code
            );
        }
        for actor in [&national, &Actor::System] {
            assert!(can_import_sites(actor).is_ok());
        }
        for actor in [&tokyo, &chiyoda_m, &clinic_a, &wholesaler, &assoc, &federation] {
            assert!(can_import_sites(actor).is_err(), "import {actor:?}");
        }

        // availability (status and booking) and venue slots
        let venue_site = Actor::Site(venue_code);
        let availability: &[(&Actor, &SiteFacts<'_>, bool, bool)] = &[
            // actor, site, may set availability, may manage slots
            (&national, &clinic, true, true),
            (&national, &venue, true, true),
            (&clinic_a, &clinic, true, false),
            (&clinic_a, &venue, false, false),
            (&venue_site, &venue, true, false),
            (&chiyoda_m, &venue, true, true),
            (&chiyoda_m, &clinic, false, false),
            (&sapporo_m, &venue, false, false),
            (&tokyo, &venue, false, false),
            (&tokyo, &clinic, false, false),
            (&wholesaler, &clinic, false, false),
            (&assoc, &clinic, false, false),
            (&federation, &venue, false, false),
        ];
        for (actor, site, set, slots) in availability {
            assert_eq!(
                can_set_availability(actor, site).is_ok(),
                *set,
                "availability {actor:?} {}",
                site.code
            );
            assert_eq!(
                can_manage_slots(actor, site).is_ok(),
                *slots,
                "slots {actor:?} {}",
                site.code
            );
        }
    }

    /// The role × operation matrix for allocation: rounds, target populations, editing,
    /// reading allocations, requests, orders and the outbox.
    #[test]
    fn allocation_matrix() {
        use AllocationOwner as O;
        let tokyo_p: PrefectureCode = "13".parse().expect("p");
        let osaka_p: PrefectureCode = "27".parse().expect("p");
        let chiyoda = m("131016");
        let shinjuku = m("131041");
        let osaka_city = m("271004");
        let clinic = sc("1312020017");
        let suzuken: WholesalerId = "suzuken".parse().expect("w");

        let national = Actor::National;
        let tokyo = Actor::Prefecture(tokyo_p);
        let osaka = Actor::Prefecture(osaka_p);
        let chiyoda_m = Actor::Municipality(chiyoda);
        let shinjuku_m = Actor::Municipality(shinjuku);
        let site = Actor::Site(clinic);
        let wholesaler = Actor::Wholesaler(suzuken.clone());
        let assoc = Actor::MedicalAssociation(vec![chiyoda]);
        let federation = Actor::Federation(tokyo_p);
        let everyone = [&national, &tokyo, &chiyoda_m, &site, &wholesaler, &assoc, &federation];

        // rounds and supply: NATIONAL only
        for a in everyone {
            assert_eq!(can_manage_rounds(a).is_ok(), *a == national, "rounds {a:?}");
            assert_eq!(can_read_outbox(a).is_ok(), *a == national, "outbox {a:?}");
            assert!(can_confirm_in_bulk(a).is_err(), "bulk {a:?}");
        }
        assert!(can_confirm_in_bulk(&Actor::System).is_ok());

        // target population
        let imports: &[(&Actor, &MunicipalityCode, bool)] = &[
            (&national, &osaka_city, true),
            (&tokyo, &chiyoda, true),
            (&tokyo, &osaka_city, false),
            (&chiyoda_m, &chiyoda, false),
            (&site, &chiyoda, false),
            (&wholesaler, &chiyoda, false),
        ];
        for (a, muni, ok) in imports {
            assert_eq!(
                can_import_target_population(a, muni).is_ok(),
                *ok,
                "population {a:?} {muni}"
            );
        }

        // editing: only the owner
        let owners = [
            O::National,
            O::Prefecture(tokyo_p),
            O::Prefecture(osaka_p),
            O::Municipality(chiyoda),
            O::Municipality(shinjuku),
        ];
        let edits: &[(&Actor, &[bool; 5])] = &[
            (&national, &[true, false, false, false, false]),
            (&tokyo, &[false, true, false, false, false]),
            (&osaka, &[false, false, true, false, false]),
            (&chiyoda_m, &[false, false, false, true, false]),
            (&shinjuku_m, &[false, false, false, false, true]),
            (&site, &[false; 5]),
            (&wholesaler, &[false; 5]),
            (&assoc, &[false; 5]),
            (&federation, &[false; 5]),
            (&Actor::System, &[true; 5]),
        ];
        for (a, allowed) in edits {
            for (owner, ok) in owners.iter().zip(allowed.iter()) {
                assert_eq!(can_edit_allocation(a, owner).is_ok(), *ok, "edit {a:?} {owner}");
            }
        }
        assert_eq!(own_allocation(&tokyo), Ok(O::Prefecture(tokyo_p)));
        assert!(own_allocation(&site).is_err());

        // reading
        use AllocationAccess::{Full, OwnLine};
        let reads: &[(&Actor, O, Option<AllocationAccess>)] = &[
            (&national, O::Municipality(shinjuku), Some(Full)),
            (&tokyo, O::National, Some(OwnLine(ChildCode::Prefecture(tokyo_p)))),
            (&tokyo, O::Prefecture(tokyo_p), Some(Full)),
            (&tokyo, O::Prefecture(osaka_p), None),
            (&tokyo, O::Municipality(chiyoda), Some(Full)),
            (&tokyo, O::Municipality(osaka_city), None),
            (&chiyoda_m, O::National, None),
            (
                &chiyoda_m,
                O::Prefecture(tokyo_p),
                Some(OwnLine(ChildCode::Municipality(chiyoda))),
            ),
            (&chiyoda_m, O::Prefecture(osaka_p), None),
            (&chiyoda_m, O::Municipality(chiyoda), Some(Full)),
            (&chiyoda_m, O::Municipality(shinjuku), None),
            (&site, O::Municipality(chiyoda), Some(OwnLine(ChildCode::Site(clinic)))),
            (&site, O::Prefecture(tokyo_p), None),
            (&wholesaler, O::Municipality(chiyoda), None),
            (&assoc, O::Municipality(chiyoda), None),
            (&federation, O::Prefecture(tokyo_p), None),
        ];
        for (a, owner, want) in reads {
            assert_eq!(allocation_access(a, owner).ok(), *want, "read {a:?} {owner}");
        }

        // requests
        assert_eq!(requester(&tokyo), Ok(ChildCode::Prefecture(tokyo_p)));
        assert_eq!(requester(&chiyoda_m), Ok(ChildCode::Municipality(chiyoda)));
        assert_eq!(requester(&site), Ok(ChildCode::Site(clinic)));
        for a in [&national, &wholesaler, &assoc, &federation] {
            assert!(requester(a).is_err(), "request {a:?}");
        }
        assert_eq!(request_read_scope(&national), Ok(RequestScope::All));
        assert_eq!(request_read_scope(&tokyo), Ok(RequestScope::Prefecture(tokyo_p)));
        assert_eq!(request_read_scope(&site), Ok(RequestScope::Site(clinic)));
        for a in [&wholesaler, &assoc, &federation] {
            assert!(request_read_scope(a).is_err(), "read requests {a:?}");
        }

        // orders
        assert_eq!(order_read_scope(&national), Ok(OrderScope::All));
        assert_eq!(order_read_scope(&chiyoda_m), Ok(OrderScope::Municipality(chiyoda)));
        assert_eq!(order_read_scope(&site), Ok(OrderScope::Site(clinic)));
        assert_eq!(order_read_scope(&wholesaler), Ok(OrderScope::Wholesaler(suzuken)));
        for a in [&assoc, &federation] {
            assert!(order_read_scope(a).is_err(), "orders {a:?}");
        }
    }

    /// The role × operation matrix for the wholesaler integration: configuration, customer
    /// codes, parked messages and acknowledgements.
    #[test]
    fn wholesaler_matrix() {
        let suzuken: WholesalerId = "suzuken".parse().expect("w");
        let medipal: WholesalerId = "medipal".parse().expect("w");
        let national = Actor::National;
        let own = Actor::Wholesaler(suzuken.clone());
        let other = Actor::Wholesaler(medipal.clone());
        let others = [
            Actor::Prefecture("13".parse().expect("p")),
            Actor::Municipality(m("131016")),
            Actor::Site(sc("1312020017")),
            Actor::MedicalAssociation(vec![m("131016")]),
            Actor::Federation("13".parse().expect("p")),
        ];
        assert!(can_manage_wholesalers(&national).is_ok());
        assert!(can_read_wholesaler_config(&national, &suzuken).is_ok());
        assert!(can_read_wholesaler_config(&own, &suzuken).is_ok());
        assert!(can_read_wholesaler_config(&other, &suzuken).is_err());
        assert_eq!(outbox_scope(&national), Ok(OutboxScope::All));
        assert_eq!(outbox_scope(&own), Ok(OutboxScope::Wholesaler(suzuken.clone())));
        assert_eq!(acknowledging_wholesaler(&own), Ok(&suzuken));
        assert!(
            acknowledging_wholesaler(&national).is_err(),
            "NATIONAL cannot confirm receipt"
        );
        for a in [&own, &other] {
            assert!(can_manage_wholesalers(a).is_err(), "{a:?}");
        }
        for a in &others {
            assert!(can_manage_wholesalers(a).is_err(), "{a:?}");
            assert!(can_read_wholesaler_config(a, &suzuken).is_err(), "{a:?}");
            assert!(outbox_scope(a).is_err(), "{a:?}");
            assert!(acknowledging_wholesaler(a).is_err(), "{a:?}");
        }
    }

    /// The role × operation matrix for stock: reading areas and writing a site's ledger.
    #[test]
    fn stock_matrix() {
        let chiyoda = m("131016");
        let shinjuku = m("131041");
        let sapporo = m("011002");
        let clinic_code = sc("1311234569");
        let far_code = sc("0110113719");
        let clinic = StockArea::Site {
            code: clinic_code,
            municipality: chiyoda,
        };
        let far = StockArea::Site {
            code: far_code,
            municipality: sapporo,
        };
        let tokyo_p: PrefectureCode = "13".parse().expect("p");
        let hokkaido_p: PrefectureCode = "01".parse().expect("p");

        let national = Actor::National;
        let tokyo = Actor::Prefecture(tokyo_p);
        let chiyoda_m = Actor::Municipality(chiyoda);
        let clinic_a = Actor::Site(clinic_code);
        let far_a = Actor::Site(far_code);
        let wholesaler = Actor::Wholesaler("suzuken".parse().expect("w"));
        let assoc = Actor::MedicalAssociation(vec![chiyoda]);
        let federation = Actor::Federation(tokyo_p);

        use StockArea as A;
        let reads: &[(&Actor, StockArea, bool)] = &[
            (&national, A::Nation, true),
            (&national, far.clone(), true),
            (&tokyo, clinic.clone(), true),
            (&tokyo, far.clone(), false),
            (&tokyo, A::Municipality(chiyoda), true),
            (&tokyo, A::Municipality(sapporo), false),
            (&tokyo, A::Prefecture(tokyo_p), true),
            (&tokyo, A::Prefecture(hokkaido_p), false),
            (&tokyo, A::Nation, false),
            (&chiyoda_m, clinic.clone(), true),
            (&chiyoda_m, far.clone(), false),
            (&chiyoda_m, A::Municipality(chiyoda), true),
            (&chiyoda_m, A::Municipality(shinjuku), false),
            (&chiyoda_m, A::Prefecture(tokyo_p), false),
            (&chiyoda_m, A::Nation, false),
            (&clinic_a, clinic.clone(), true),
            (&clinic_a, far.clone(), false),
            (&clinic_a, A::Municipality(chiyoda), false),
            (&far_a, clinic.clone(), false),
            (&wholesaler, clinic.clone(), false),
            (&assoc, clinic.clone(), false),
            (&assoc, A::Municipality(chiyoda), false),
            (&federation, A::Prefecture(tokyo_p), false),
            (&Actor::System, A::Nation, true),
        ];
        for (actor, area, allowed) in reads {
            assert_eq!(
                can_read_stock_area(actor, area).is_ok(),
                *allowed,
                "read stock {actor:?} {}",
                area.key()
            );
        }
        for (actor, scoped) in [
            (&national, true),
            (&tokyo, true),
            (&chiyoda_m, true),
            (&clinic_a, true),
            (&wholesaler, false),
            (&assoc, false),
            (&federation, false),
        ] {
            assert_eq!(stock_read_scope(actor).is_ok(), scoped, "scope {actor:?}");
        }

        let writes: &[(&Actor, &SiteCode, bool)] = &[
            (&clinic_a, &clinic_code, true),
            (&clinic_a, &far_code, false),
            (&far_a, &clinic_code, false),
            (&national, &clinic_code, false),
            (&tokyo, &clinic_code, false),
            (&chiyoda_m, &clinic_code, false),
            (&wholesaler, &clinic_code, false),
            (&assoc, &clinic_code, false),
            (&federation, &clinic_code, false),
            (&Actor::System, &clinic_code, true),
        ];
        for (actor, site, allowed) in writes {
            assert_eq!(
                can_write_stock(actor, site).is_ok(),
                *allowed,
                "write stock {actor:?} {site}"
            );
        }
    }
}

// ---- persons (VRS personal data) ----

use crate::personal::person::PersonField;

/// Managing persons — registering, changing, importing, issuing coupons, linking earlier
/// records, reading the access log: the municipality the persons live in (or the server's
/// operator). A person is held by their municipality of residence and by nobody else.
pub fn can_manage_persons(actor: &Actor, municipality: &MunicipalityCode) -> Result<(), Denied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Municipality(m) if m == municipality => Ok(()),
        Actor::Municipality(_) => deny("persons are held by their municipality of residence; this one is not yours"),
        _ => deny("persons are managed by their municipality of residence"),
    }
}

/// The municipality whose persons a caller may list and look up: its own. PREFECTURE and
/// NATIONAL see counts only ([`person_count_scope`]); sites, wholesalers, medical associations
/// and federations see no person.
pub fn person_read_scope(actor: &Actor) -> Result<Option<MunicipalityCode>, Denied> {
    match actor {
        Actor::System => Ok(None),
        Actor::Municipality(m) => Ok(Some(*m)),
        Actor::National | Actor::Prefecture(_) => deny("PREFECTURE and NATIONAL see counts of persons, never persons"),
        _ => deny("this role sees no person"),
    }
}

/// Reading one personal field of a person held by `municipality`. Names, kana, address, birth
/// date, sex and the municipality's own number: that municipality. My Number and the look-up
/// of earlier records by it: that municipality, only with a stated `purpose`. Every allowed read
/// is audited by the service that performs it.
pub fn can_read_person_field(
    actor: &Actor,
    municipality: &MunicipalityCode,
    field: PersonField,
    purpose: Option<&str>,
) -> Result<(), Denied> {
    let own = match actor {
        Actor::System => true,
        Actor::Municipality(m) => m == municipality,
        Actor::National | Actor::Prefecture(_) => {
            return deny(format!(
                "{field} is personal data: PREFECTURE and NATIONAL see counts of persons, never names"
            ));
        }
        _ => return deny(format!("{field} is personal data this role may not read")),
    };
    if !own {
        return deny(format!(
            "{field} is read only by the person's municipality of residence"
        ));
    }
    let needs_purpose = matches!(field, PersonField::MyNumber | PersonField::EarlierRecordLookup);
    if needs_purpose && purpose.is_none_or(|p| p.trim().is_empty()) {
        return deny(format!(
            "{field} is read only with a stated purpose (argument `purpose`)"
        ));
    }
    Ok(())
}

/// Whose person counts (residents per municipality) a caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonCountScope {
    All,
    Prefecture(PrefectureCode),
    Municipality(MunicipalityCode),
}

/// Counts of persons: NATIONAL everywhere, a PREFECTURE its municipalities, a MUNICIPALITY
/// itself. Counts carry no personal data; other roles have no business with residents.
pub fn person_count_scope(actor: &Actor) -> Result<PersonCountScope, Denied> {
    match actor {
        Actor::National | Actor::System => Ok(PersonCountScope::All),
        Actor::Prefecture(p) => Ok(PersonCountScope::Prefecture(*p)),
        Actor::Municipality(m) => Ok(PersonCountScope::Municipality(*m)),
        _ => deny("counts of persons are read by NATIONAL, PREFECTURE and MUNICIPALITY"),
    }
}

#[cfg(test)]
mod person_tests {
    use super::*;

    fn m(s: &str) -> MunicipalityCode {
        s.parse().expect("municipality")
    }

    /// The role × personal field matrix: who reads which field of a Chiyoda resident, with and
    /// without a stated purpose.
    #[test]
    fn person_field_matrix() {
        let chiyoda = m("131016");
        let tokyo: PrefectureCode = "13".parse().expect("p");
        let own = Actor::Municipality(chiyoda);
        let other = Actor::Municipality(m("131041"));
        let actors: [(&str, Actor); 9] = [
            ("own municipality", own),
            ("other municipality", other),
            ("prefecture", Actor::Prefecture(tokyo)),
            ("national", Actor::National),
            ("site", Actor::Site("1311234569".parse().expect("site"))),
            ("wholesaler", Actor::Wholesaler("suzuken".parse().expect("w"))),
            ("medical association", Actor::MedicalAssociation(vec![chiyoda])),
            ("federation", Actor::Federation(tokyo)),
            ("operator", Actor::System),
        ];
        for (who, actor) in &actors {
            let own_or_operator = matches!(*who, "own municipality" | "operator");
            for field in PersonField::ALL {
                let protected = matches!(field, PersonField::MyNumber | PersonField::EarlierRecordLookup);
                for purpose in [None, Some(""), Some("転入に伴う接種記録の確認")] {
                    let stated = purpose.is_some_and(|p| !p.is_empty());
                    let want = own_or_operator && (!protected || stated);
                    let got = can_read_person_field(actor, &chiyoda, *field, purpose);
                    assert_eq!(
                        got.is_ok(),
                        want,
                        "{who} reads {field} with purpose {purpose:?}: {got:?}"
                    );
                    if let Err(Denied(reason)) = got {
                        assert!(reason.contains(field.as_str()), "{reason}");
                    }
                }
            }
            let manage = can_manage_persons(actor, &chiyoda).is_ok();
            assert_eq!(manage, own_or_operator, "{who} manages Chiyoda's persons");
            let scope = person_read_scope(actor);
            assert_eq!(
                scope.is_ok(),
                own_or_operator || *who == "other municipality",
                "{who} lists persons"
            );
            let counts = person_count_scope(actor).is_ok();
            assert_eq!(
                counts,
                matches!(
                    *who,
                    "own municipality" | "other municipality" | "prefecture" | "national" | "operator"
                ),
                "{who} counts persons"
            );
        }
        assert_eq!(person_read_scope(&Actor::Municipality(chiyoda)), Ok(Some(chiyoda)));
        assert_eq!(
            person_count_scope(&Actor::Prefecture(tokyo)),
            Ok(PersonCountScope::Prefecture(tokyo))
        );
    }
}
