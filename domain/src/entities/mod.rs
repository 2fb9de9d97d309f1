//! SeaORM entities: the storage shape of the domain. Columns hold plain strings and numbers;
//! services parse them into domain types on the way out, so nothing outside `domain` sees a
//! row. These mirror the migrations, which never import them.

pub mod allocation;
pub mod allocation_line;
pub mod allocation_request;
pub mod assigned_code_serial;
pub mod customer_code;
pub mod delivery;
pub mod delivery_lot;
pub mod lot;
pub mod municipality;
pub mod order;
pub mod order_ancillary;
pub mod outbox;
pub mod person;
pub mod prefecture;
pub mod product;
pub mod product_ancillary;
pub mod round;
pub mod site;
pub mod site_availability;
pub mod site_history;
pub mod stock_balance;
pub mod stock_entry;
pub mod stock_report;
pub mod stock_report_line;
pub mod target_population;
pub mod venue_slot;
pub mod wholesaler;
