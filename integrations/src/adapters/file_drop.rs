//! File drop: for partners who exchange files. Each batch becomes one CSV file per wholesaler,
//! written under `<drop dir>/<wholesaler id>/` atomically: the rows go to a hidden temporary
//! file in the same directory, which is flushed to disk and then renamed to
//! `orders-<UTC time>-<first outbox id>-<last outbox id>.csv`. A reader never sees a half-written
//! file (it should ignore names starting with `.`).
//!
//! Layout (UTF-8, no BOM, comma-separated, RFC 4180 quoting, header line first): one line per
//! item of an order — the vaccine line first, then each ancillary — with these columns:
//! [`COLUMNS`]. Quantities are integers; empty where not applicable (`boxes`, `vials`, `doses`
//! on ancillary lines, `per_vial`, `pieces` on the vaccine line). The idempotency key repeats on
//! every line of its order: after a crash a batch can be written again, and the same key in a
//! later file is the same order, not a new one. The wholesaler acknowledges receipt with the
//! `acknowledgeOrders` mutation.

use std::path::{Path, PathBuf};

use chrono::Utc;
use domain::dispatch::Claimed;
use domain::order::{OrderCreated, OrderItem};
use domain::wholesaler::AdapterKind;

use super::{Adapter, Attempt, BoxFuture};

/// The columns of a drop file, in order.
pub const COLUMNS: [&str; 23] = [
    "idempotency_key",
    "order_id",
    "customer_code",
    "site_code",
    "site_name",
    "postal_code",
    "address",
    "phone",
    "receiving_days",
    "receiving_hours",
    "delivery_notes",
    "round_id",
    "round_starts_on",
    "round_ends_on",
    "line",
    "item_kind",
    "product",
    "boxes",
    "vials",
    "doses",
    "per_vial",
    "pieces",
    "instructed_at",
];

/// The file's text for `batch`, and per message whether it could be written (a message whose
/// stored payload cannot be read is left out and parked). Pure; table-tested.
pub fn render(batch: &[&Claimed]) -> (String, Vec<Result<(), String>>) {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut outcomes = Vec::with_capacity(batch.len());
    let _ = w.write_record(COLUMNS);
    for m in batch {
        let order: OrderCreated = match serde_json::from_str(&m.payload) {
            Ok(o) => o,
            Err(_) => {
                outcomes.push(Err(
                    "UNDELIVERABLE: the stored payload is not an order.created message".to_owned()
                ));
                continue;
            }
        };
        let s = &order.site;
        let mut result = Ok(());
        for (n, item) in order.items.iter().enumerate() {
            let (kind, product, boxes, vials, doses, per_vial, pieces) = match item {
                OrderItem::Vaccine {
                    product,
                    boxes,
                    vials,
                    doses,
                } => (
                    "VACCINE",
                    product,
                    boxes.to_string(),
                    vials.to_string(),
                    doses.to_string(),
                    String::new(),
                    String::new(),
                ),
                OrderItem::Ancillary {
                    product,
                    per_vial,
                    pieces,
                } => (
                    "ANCILLARY",
                    product,
                    String::new(),
                    String::new(),
                    String::new(),
                    per_vial.to_string(),
                    pieces.to_string(),
                ),
            };
            let record = [
                m.idempotency_key.clone(),
                order.order_id.clone(),
                m.customer_code.as_str().to_owned(),
                s.code.clone(),
                s.name.clone(),
                s.postal_code.clone(),
                s.address.clone(),
                s.phone.clone(),
                s.receiving_days.join(" "),
                s.receiving_hours.clone(),
                s.delivery_notes.clone(),
                order.round.id.to_string(),
                order.round.starts_on.to_string(),
                order.round.ends_on.to_string(),
                (n + 1).to_string(),
                kind.to_owned(),
                product.clone(),
                boxes,
                vials,
                doses,
                per_vial,
                pieces,
                order.instructed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ];
            if let Err(e) = w.write_record(&record) {
                result = Err(format!("UNDELIVERABLE: {e}"));
            }
        }
        outcomes.push(result);
    }
    let bytes = w.into_inner().unwrap_or_default();
    (String::from_utf8(bytes).unwrap_or_default(), outcomes)
}

pub struct FileDrop {
    dir: PathBuf,
}

impl FileDrop {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileDrop { dir: dir.into() }
    }

    /// Writes `text` atomically as `name` in `dir`.
    async fn write_atomically(dir: &Path, name: &str, text: &str) -> std::io::Result<PathBuf> {
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".{name}.part"));
        let target = dir.join(name);
        {
            use tokio::io::AsyncWriteExt;
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(text.as_bytes()).await?;
            f.sync_all().await?;
        }
        if let Err(e) = tokio::fs::rename(&tmp, &target).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(target)
    }
}

impl Adapter for FileDrop {
    fn kind(&self) -> AdapterKind {
        AdapterKind::FileDrop
    }

    fn deliver<'a>(&'a self, batch: &'a [Claimed]) -> BoxFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let mut attempts: Vec<Option<Attempt>> = vec![None; batch.len()];
            let mut wholesalers: Vec<&str> = batch.iter().map(|m| m.wholesaler.as_str()).collect();
            wholesalers.sort_unstable();
            wholesalers.dedup();
            for w in wholesalers {
                let idx: Vec<usize> = (0..batch.len())
                    .filter(|i| batch[*i].wholesaler.as_str() == w)
                    .collect();
                let group: Vec<&Claimed> = idx.iter().map(|i| &batch[*i]).collect();
                let (text, outcomes) = render(&group);
                let written: Vec<usize> = idx
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.is_ok())
                    .map(|(i, _)| *i)
                    .collect();
                let result = if written.is_empty() {
                    Ok(PathBuf::new())
                } else {
                    let first = batch[written[0]].id;
                    let last = batch[written[written.len() - 1]].id;
                    let name = format!("orders-{}-{first}-{last}.csv", Utc::now().format("%Y%m%dT%H%M%S%3fZ"));
                    Self::write_atomically(&self.dir.join(w), &name, &text).await
                };
                if let Err(e) = &result {
                    tracing::warn!(wholesaler = w, error = %e.kind(), "file drop failed; will retry");
                }
                for (i, o) in idx.iter().zip(outcomes) {
                    attempts[*i] = Some(match (o, &result) {
                        (Err(e), _) => Attempt::Permanent(e),
                        (Ok(()), Ok(_)) => Attempt::Delivered {
                            acknowledged: false,
                            reference: None,
                        },
                        (Ok(()), Err(e)) => Attempt::Transient(format!("writing the drop file failed: {}", e.kind())),
                    });
                }
            }
            attempts
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Attempt::Transient("not attempted".into())))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::wholesaler::{AdapterConfig, CustomerCode};

    fn claimed(id: i64, payload: &str) -> Claimed {
        Claimed {
            id,
            idempotency_key: format!("order.created:12-13120{id:05}"),
            payload: payload.to_owned(),
            order_id: format!("12-13120{id:05}"),
            wholesaler: "alfresa".parse().expect("w"),
            adapter: AdapterConfig::FileDrop,
            customer_code: CustomerCode::parse("A-77").expect("code"),
            attempt: 1,
        }
    }

    const PAYLOAD: &str = r#"{"schemaVersion":1,"orderId":"12-1312020017","round":{"id":12,"product":"comirnaty","number":9,"startsOn":"2021-07-05","endsOn":"2021-07-18"},"wholesaler":"alfresa","site":{"code":"1312020017","name":"さくら内科, 本院","prefecture":"13","municipality":"131016","postalCode":"100-0001","address":"東京都千代田区千代田1-1","phone":"03-1234-5678","receivingDays":["MON","WED"],"receivingHours":"09:00-17:00","deliveryNotes":"裏口 \"搬入口\""},"items":[{"kind":"VACCINE","product":"comirnaty","boxes":2,"vials":390,"doses":2340},{"kind":"ANCILLARY","product":"needle-25g","perVial":6,"pieces":2340}],"instructedAt":"2026-11-27T09:00:00Z","instructedBy":"MUNICIPALITY:131016"}"#;

    #[test]
    fn the_layout_has_one_line_per_item() {
        let a = claimed(1, PAYLOAD);
        let bad = claimed(2, "not json");
        let (text, outcomes) = render(&[&a, &bad]);
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes[0].is_ok());
        assert!(outcomes[1].as_ref().is_err_and(|e| e.starts_with("UNDELIVERABLE")));
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(r.headers().expect("header").iter().collect::<Vec<_>>(), COLUMNS);
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        let col = |row: &csv::StringRecord, name: &str| {
            row.get(COLUMNS.iter().position(|c| *c == name).expect("column"))
                .expect("field")
                .to_owned()
        };
        let cases: &[(usize, &str, &str)] = &[
            (0, "idempotency_key", "order.created:12-1312000001"),
            (0, "order_id", "12-1312020017"),
            (0, "customer_code", "A-77"),
            (0, "site_name", "さくら内科, 本院"),
            (0, "delivery_notes", "裏口 \"搬入口\""),
            (0, "receiving_days", "MON WED"),
            (0, "line", "1"),
            (0, "item_kind", "VACCINE"),
            (0, "boxes", "2"),
            (0, "doses", "2340"),
            (0, "per_vial", ""),
            (1, "line", "2"),
            (1, "item_kind", "ANCILLARY"),
            (1, "product", "needle-25g"),
            (1, "boxes", ""),
            (1, "per_vial", "6"),
            (1, "pieces", "2340"),
            (1, "instructed_at", "2026-11-27T09:00:00Z"),
        ];
        for (row, name, want) in cases {
            assert_eq!(col(&rows[*row], name), *want, "row {row} {name}");
        }
    }
}
