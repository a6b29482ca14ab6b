//! `gpu_devices` and `packs`, and seeding both from the configuration.

use sqlx::Pool;

use super::backend::{Dialect, db_error, pack_columns, sql_impl};
use super::rows::{GpuRow, PackRow, to_u32};
use crate::model::{self, DEFAULT_PACK_ID, GpuDevice, GpuId, Pack, PackId};
use crate::store::{Seed, SeedReport, StoreError};

/// The GPU and pack tables of one pool.
pub(super) struct Gpus<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

sql_impl! {
impl Gpus<'p> {
    pub async fn seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        let mut tx = self.0.begin().await.map_err(db_error)?;
        let now = model::to_unix_ms(model::now());
        sqlx::query(DB::INSERT_PACK_IF_MISSING)
            .bind(DEFAULT_PACK_ID.to_string())
            .bind("default".to_owned())
            .bind("both".to_owned())
            .bind(seed.default_pack_image.clone())
            .bind(seed.default_pack_digest.clone())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // The config is the truth about the default pack's image.
        sqlx::query("UPDATE packs SET image_ref = ?, image_digest = ? WHERE id = ?")
            .bind(seed.default_pack_image.clone())
            .bind(seed.default_pack_digest.clone())
            .bind(DEFAULT_PACK_ID.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;

        let rows: Vec<(i64, bool)> = sqlx::query_as("SELECT id, enabled FROM gpu_devices ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut existing = Vec::with_capacity(rows.len());
        for (id, enabled) in rows {
            existing.push((GpuId(to_u32(id, "gpu_devices")?), enabled));
        }
        let mut report = SeedReport::default();
        for &gpu in &seed.gpu_ids {
            if !existing.iter().any(|(id, _)| *id == gpu) {
                sqlx::query(DB::INSERT_GPU_IF_MISSING)
                    .bind(i64::from(gpu.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                report.gpus_added.push(gpu);
            }
        }
        for &(gpu, enabled) in &existing {
            if enabled && !seed.gpu_ids.contains(&gpu) {
                sqlx::query("UPDATE gpu_devices SET enabled = ? WHERE id = ?")
                    .bind(false)
                    .bind(i64::from(gpu.0))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                report.gpus_disabled.push(gpu);
            }
        }
        // What the driver says a GPU is, for the rows the config names.
        for info in seed.gpu_details.iter().filter(|g| seed.gpu_ids.contains(&GpuId(g.index))) {
            sqlx::query("UPDATE gpu_devices SET uuid = ?, name = ?, memory_total_bytes = ? WHERE id = ?")
                .bind(info.uuid.clone())
                .bind(info.name.clone())
                .bind(i64::try_from(info.memory_total_bytes).unwrap_or(i64::MAX))
                .bind(i64::from(info.index))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(report)
    }

    pub async fn pack(&self, id: PackId) -> Result<Option<Pack>, StoreError> {
        let row: Option<PackRow> = sqlx::query_as(concat!("SELECT ", pack_columns!(), " FROM packs p WHERE p.id = ?"))
            .bind(id.to_string())
            .fetch_optional(self.0)
            .await
            .map_err(db_error)?;
        row.map(PackRow::into_model).transpose()
    }

    pub async fn packs(&self) -> Result<Vec<Pack>, StoreError> {
        let rows: Vec<PackRow> =
            sqlx::query_as(concat!("SELECT ", pack_columns!(), " FROM packs p ORDER BY p.created_at, p.id"))
                .fetch_all(self.0)
                .await
                .map_err(db_error)?;
        rows.into_iter().map(PackRow::into_model).collect()
    }

    pub async fn list(&self) -> Result<Vec<GpuDevice>, StoreError> {
        let rows: Vec<GpuRow> = sqlx::query_as(
            "SELECT g.id, g.enabled, g.uuid, g.name, g.memory_total_bytes, s.id AS session_id, s.user_id, \
             s.created_at AS held_since FROM gpu_devices g \
             LEFT JOIN sessions s ON s.gpu_id = g.id AND s.gpu_active = 1 ORDER BY g.id",
        )
        .fetch_all(self.0)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(GpuRow::into_model).collect()
    }

    pub async fn set_enabled(&self, id: GpuId, enabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE gpu_devices SET enabled = ? WHERE id = ?")
            .bind(enabled)
            .bind(i64::from(id.0))
            .execute(self.0)
            .await
            .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }
}
}
