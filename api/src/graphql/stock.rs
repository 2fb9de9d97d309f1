//! Stock resolvers: the ledger's mutations (each publishes its committed changes on the event
//! bus after the domain call returned), its queries, and the `stockChanged` subscription.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, ID, Object, Subscription};
use domain::ledger::{self, StockFilter};
use domain::quantity::Vials;
use domain::stock::{StockArea, StockChange as Change};
use futures_util::Stream;
use tokio_stream::StreamExt;

use super::scalars::{LotNumber, MunicipalityCode, PrefectureCode, ProductCode, SiteCode};
use super::stock_types::{
    ProductStock, RecordReceiptInput, RecordWasteInput, ReportStockInput, StockBalance, StockChange, StockEntry,
    StockEntryKind, StockReport, StockReportOutcome, StockSummary, StockUseInput, TransferStockInput,
};
use super::{caller_actor, gql, store};
use crate::error::{code, coded};
use crate::events::{Event, Events};

const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 50;

/// A stock change travels on the bus under topic `stock`, keyed by its site, municipality,
/// prefecture and the nation, so each subscriber's channel carries only its area.
impl Event for Change {
    const TOPIC: &'static str = "stock";

    fn keys(&self) -> Vec<String> {
        vec![
            StockArea::Site {
                code: self.site,
                municipality: self.municipality,
            }
            .key(),
            StockArea::Municipality(self.municipality).key(),
            StockArea::Prefecture(self.prefecture()).key(),
            StockArea::Nation.key(),
        ]
    }

    /// A site changes a few times a minute at most; wider areas carry many more events, so
    /// their subscribers get proportionally more room before they are told they lagged.
    fn capacity(key: &str) -> usize {
        match key.split(':').next() {
            Some("site") => 16,
            Some("municipality") => 256,
            Some("prefecture") => 1024,
            _ => 4096,
        }
    }
}

pub(super) fn publish(ctx: &Context<'_>, changes: &[Arc<Change>]) -> async_graphql::Result<()> {
    let events = ctx.data::<Events>()?;
    for c in changes {
        events.publish(Change::clone(c));
    }
    Ok(())
}

fn filter(
    site: Option<SiteCode>,
    municipality: Option<MunicipalityCode>,
    prefecture: Option<PrefectureCode>,
) -> StockFilter {
    StockFilter {
        site: site.map(|s| s.0),
        municipality: municipality.map(|m| m.0),
        prefecture: prefecture.map(|p| p.0),
    }
}

/// A vial count from input; a negative one is refused naming the field (1 to the entry maximum
/// is checked by the domain).
fn vials(n: i64, field: &str) -> async_graphql::Result<Vials> {
    u64::try_from(n)
        .map(Vials::new)
        .map_err(|_| coded(format!("{field}: must not be negative"), code::BAD_USER_INPUT))
}

fn entry_id(id: &ID, field: &str) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| coded(format!("{field}: not an entry id"), code::BAD_USER_INPUT))
}

fn page_size(first: Option<usize>) -> async_graphql::Result<usize> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if first > MAX_PAGE {
        return Err(coded(format!("first: at most {MAX_PAGE}"), code::BAD_USER_INPUT));
    }
    Ok(first)
}

fn cursor(after: Option<String>) -> async_graphql::Result<Option<i64>> {
    after
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| coded("after: not a cursor from this list", code::BAD_USER_INPUT))
        })
        .transpose()
}

#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// What a site holds, by product, expiry date and lot (lots used up left out unless
    /// `includeEmpty`).
    async fn stock(
        &self,
        ctx: &Context<'_>,
        site: SiteCode,
        product: Option<ProductCode>,
        #[graphql(default)] include_empty: bool,
    ) -> async_graphql::Result<Vec<StockBalance>> {
        let actor = caller_actor(ctx)?;
        let rows = gql(ledger::balances(
            store(ctx)?,
            actor,
            &site.0,
            product.as_ref().map(|p| &p.0),
            include_empty,
        )
        .await)?;
        Ok(rows.into_iter().map(StockBalance).collect())
    }

    /// A site's ledger, newest first (Relay cursor pagination).
    #[allow(clippy::too_many_arguments)]
    async fn stock_history(
        &self,
        ctx: &Context<'_>,
        site: SiteCode,
        product: Option<ProductCode>,
        lot: Option<LotNumber>,
        kind: Option<StockEntryKind>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, StockEntry, EmptyFields, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = ledger::EntryFilter {
            product: product.map(|p| p.0),
            lot: lot.map(|l| l.0),
            kind: kind.map(Into::into),
        };
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _, first, _| async move {
                let first = page_size(first)?;
                let before = cursor(after)?;
                let page = gql(ledger::history(store, actor, &site.0, &f, before, first as u64).await)?;
                let mut conn = Connection::new(before.is_some(), page.has_next);
                conn.edges.extend(
                    page.entries
                        .into_iter()
                        .map(|e| Edge::new(e.id.to_string(), StockEntry(e))),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// Per-product stock of a site, municipality or prefecture (at most one), or of your own
    /// area when none is given: on hand, received, administered, wasted, expired, and days of
    /// supply at the average use of the last `recentDays` days.
    async fn stock_summary(
        &self,
        ctx: &Context<'_>,
        site: Option<SiteCode>,
        municipality: Option<MunicipalityCode>,
        prefecture: Option<PrefectureCode>,
        product: Option<ProductCode>,
        #[graphql(default = 7)] recent_days: i64,
    ) -> async_graphql::Result<StockSummary> {
        let actor = caller_actor(ctx)?;
        let f = filter(site, municipality, prefecture);
        let (area, products) =
            gql(ledger::summary(store(ctx)?, actor, &f, product.as_ref().map(|p| &p.0), recent_days).await)?;
        Ok(StockSummary {
            area: area.key(),
            products: products.into_iter().map(ProductStock).collect(),
        })
    }

    /// Lots with stock on hand that expire within `withinDays` days (those already expired but
    /// still on hand included), soonest first, in a site, municipality or prefecture (or your
    /// own area).
    #[allow(clippy::too_many_arguments)]
    async fn expiring_lots(
        &self,
        ctx: &Context<'_>,
        within_days: i64,
        site: Option<SiteCode>,
        municipality: Option<MunicipalityCode>,
        prefecture: Option<PrefectureCode>,
        product: Option<ProductCode>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<StockBalance>> {
        let actor = caller_actor(ctx)?;
        let first = page_size(first.map(|n| usize::try_from(n).unwrap_or(0)))?;
        let f = filter(site, municipality, prefecture);
        let rows = gql(ledger::expiring(
            store(ctx)?,
            actor,
            &f,
            product.as_ref().map(|p| &p.0),
            within_days,
            first as u64,
        )
        .await)?;
        Ok(rows.into_iter().map(StockBalance).collect())
    }

    /// Stock reports (physical counts) and their differences, newest first, of a site,
    /// municipality or prefecture (or your own area).
    async fn stock_reports(
        &self,
        ctx: &Context<'_>,
        site: Option<SiteCode>,
        municipality: Option<MunicipalityCode>,
        prefecture: Option<PrefectureCode>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, StockReport, EmptyFields, EmptyFields>> {
        let actor = caller_actor(ctx)?;
        let store = store(ctx)?;
        let f = filter(site, municipality, prefecture);
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _, first, _| async move {
                let first = page_size(first)?;
                let before = cursor(after)?;
                let (reports, has_next) = gql(ledger::reports(store, actor, &f, before, first as u64).await)?;
                let mut conn = Connection::new(before.is_some(), has_next);
                conn.edges.extend(
                    reports
                        .into_iter()
                        .map(|r| Edge::new(r.id.to_string(), StockReport::from(r))),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }
}

#[derive(Default)]
pub struct StockMutation;

#[Object]
impl StockMutation {
    /// Records vials that arrived at your site (RECEIVED): lot, expiry date and count, as on
    /// the box. A lot seen before must carry the same expiry date; an expired lot is refused.
    async fn record_receipt(&self, ctx: &Context<'_>, input: RecordReceiptInput) -> async_graphql::Result<StockChange> {
        let actor = caller_actor(ctx)?;
        let r = ledger::Receipt {
            site: input.site.0,
            product: input.product.0,
            lot: input.lot.0,
            expiry_date: input.expiry_date,
            quantity: vials(input.quantity, "input.quantity")?,
            received_on: input.received_on,
            note: input.note,
            delivery: None,
        };
        let c = Arc::new(gql(ledger::receive(store(ctx)?, actor, &r).await)?);
        publish(ctx, std::slice::from_ref(&c))?;
        Ok(StockChange(c))
    }

    /// Records vials used for vaccination (ADMINISTERED) from a lot that has not expired.
    async fn record_administered(&self, ctx: &Context<'_>, input: StockUseInput) -> async_graphql::Result<StockChange> {
        use_(
            ctx,
            input.site,
            input.product,
            input.lot,
            input.quantity,
            ledger::Use::Administered,
            input.note,
        )
        .await
    }

    /// Records vials discarded (WASTED) and why.
    async fn record_waste(&self, ctx: &Context<'_>, input: RecordWasteInput) -> async_graphql::Result<StockChange> {
        let kind = ledger::Use::Wasted(input.reason.into());
        use_(
            ctx,
            input.site,
            input.product,
            input.lot,
            input.quantity,
            kind,
            input.note,
        )
        .await
    }

    /// Records vials discarded because their lot passed its expiry date (EXPIRED).
    async fn record_expired(&self, ctx: &Context<'_>, input: StockUseInput) -> async_graphql::Result<StockChange> {
        use_(
            ctx,
            input.site,
            input.product,
            input.lot,
            input.quantity,
            ledger::Use::Expired,
            input.note,
        )
        .await
    }

    /// A base site passes vials to one of its satellites: returns the TRANSFERRED_OUT and the
    /// TRANSFERRED_IN change, booked together.
    async fn transfer_stock(
        &self,
        ctx: &Context<'_>,
        input: TransferStockInput,
    ) -> async_graphql::Result<Vec<StockChange>> {
        let actor = caller_actor(ctx)?;
        let t = ledger::Transfer {
            from: input.from.0,
            to: input.to.0,
            product: input.product.0,
            lot: input.lot.0,
            quantity: vials(input.quantity, "input.quantity")?,
            note: input.note,
        };
        let (out, inflow) = gql(ledger::transfer(store(ctx)?, actor, &t).await)?;
        let changes = [Arc::new(out), Arc::new(inflow)];
        publish(ctx, &changes)?;
        Ok(changes.into_iter().map(StockChange).collect())
    }

    /// Cancels an earlier entry of your site with a REVERSED entry (a transfer from its
    /// TRANSFERRED_OUT entry: both sides are reversed). Entries are never edited.
    async fn reverse_stock_entry(
        &self,
        ctx: &Context<'_>,
        site: SiteCode,
        entry: ID,
        reason: String,
    ) -> async_graphql::Result<Vec<StockChange>> {
        let actor = caller_actor(ctx)?;
        let id = entry_id(&entry, "entry")?;
        let changes: Vec<Arc<Change>> = gql(ledger::reverse(store(ctx)?, actor, &site.0, id, &reason).await)?
            .into_iter()
            .map(Arc::new)
            .collect();
        publish(ctx, &changes)?;
        Ok(changes.into_iter().map(StockChange).collect())
    }

    /// Reports a physical count of your site's lots (在庫報告); every lot whose count differs
    /// from the ledger gets an ADJUSTED entry with the reported reason.
    async fn report_stock(
        &self,
        ctx: &Context<'_>,
        input: ReportStockInput,
    ) -> async_graphql::Result<StockReportOutcome> {
        let actor = caller_actor(ctx)?;
        let draft = ledger::ReportDraft {
            site: input.site.0,
            counted_on: input.counted_on,
            reason: input.reason,
            lines: input
                .lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    Ok(ledger::Count {
                        counted: vials(l.counted, &format!("input.lines[{i}].counted"))?,
                        product: l.product.0,
                        lot: l.lot.0,
                        reason: l.reason,
                    })
                })
                .collect::<async_graphql::Result<_>>()?,
        };
        let (report, changes) = gql(ledger::report(store(ctx)?, actor, &draft).await)?;
        let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
        publish(ctx, &changes)?;
        Ok(StockReportOutcome {
            report: report.into(),
            adjustments: changes.into_iter().map(StockChange).collect(),
        })
    }
}

async fn use_(
    ctx: &Context<'_>,
    site: SiteCode,
    product: ProductCode,
    lot: LotNumber,
    quantity: i64,
    use_: ledger::Use,
    note: String,
) -> async_graphql::Result<StockChange> {
    let actor = caller_actor(ctx)?;
    let w = ledger::Withdrawal {
        site: site.0,
        product: product.0,
        lot: lot.0,
        quantity: vials(quantity, "input.quantity")?,
        use_,
        note,
    };
    let c = Arc::new(gql(ledger::withdraw(store(ctx)?, actor, &w).await)?);
    publish(ctx, std::slice::from_ref(&c))?;
    Ok(StockChange(c))
}

#[derive(Default)]
pub struct StockSubscription;

#[Subscription]
impl StockSubscription {
    /// Stock changes as they commit, in one site, municipality or prefecture (at most one; none:
    /// your own area), optionally of one product. Authorized like the stock queries. If you fall
    /// behind (or the link between instances was interrupted) an error with code CONFLICT and
    /// `extensions.missed` tells you to refetch; the subscription goes on.
    async fn stock_changed(
        &self,
        ctx: &Context<'_>,
        site: Option<SiteCode>,
        municipality: Option<MunicipalityCode>,
        prefecture: Option<PrefectureCode>,
        product: Option<ProductCode>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<StockChange>> + use<>> {
        let actor = caller_actor(ctx)?;
        let area = gql(ledger::resolve_area(store(ctx)?, actor, &filter(site, municipality, prefecture)).await)?;
        let product = product.map(|p| p.0);
        let stream = ctx.data::<Events>()?.subscribe::<Change>(&area.key());
        Ok(stream.filter_map(move |event| match event {
            Ok(c) => (area.covers(&c.site, &c.municipality) && product.as_ref().is_none_or(|p| *p == c.product))
                .then(|| Ok(StockChange(c))),
            Err(missed) => Some(Err(crate::error::missed(missed))),
        }))
    }
}
