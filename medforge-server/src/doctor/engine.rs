//! The checks of what sessions run on: the database, the container
//! engine, the pack image, NVIDIA support and the GPU table.

use std::path::Path;

use super::finding::Finding;
use medforge_core::model::GpuId;
use medforge_core::telemetry::GpuTelemetry;

use crate::config::{AutoKeyword, Config, Discovery, GpuIds, GpuModeSetting, RuntimeKind, TelemetrySource};
use crate::stack;

pub(super) async fn database(config: &Config) -> Finding {
    const AREA: &str = "database";
    let url = config.database_url();
    let shown = crate::config::mask_url_password(&url);
    if let Some(file) = crate::config::sqlite_file(&url)
        && !file.exists()
    {
        let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return match writable_dir_or_ancestor(dir) {
            Ok(()) => Finding::ok(AREA, format!("{shown}: not created yet; `medforge serve` creates it")),
            Err(e) => Finding::fail(
                AREA,
                format!("{shown}: cannot be created ({e})"),
                "make data_dir writable by the user that runs medforge, or point database_url elsewhere",
            ),
        };
    }
    let store = match stack::open_store(config).await {
        Ok(store) => store,
        Err(e) => {
            let fix = if url.starts_with("mysql:") {
                "check that MariaDB runs (`systemctl status mariadb`) and that database_url's host, user, password \
                 and database are right (`CREATE DATABASE medforge; GRANT ALL ON medforge.* TO ...`)"
            } else {
                "the SQLite file must be readable and writable by the user that runs medforge"
            };
            return Finding::fail(AREA, stack::one_line(&e), fix);
        }
    };
    match store.count_users().await {
        Ok(users) => Finding::ok(AREA, format!("{shown}: reachable, schema up to date, {users} users")),
        Err(e) => Finding::fail(AREA, format!("{shown}: {e}"), "see the database's own log"),
    }
}

/// `dir`, or the nearest ancestor that exists, must be writable by us.
pub(super) fn writable_dir_or_ancestor(dir: &Path) -> Result<(), String> {
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(Path::new("."));
    let probe = existing.join(format!(".medforge-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("{} is not writable: {e}", existing.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// On success the detail names the engine (later findings quote it).
pub(super) async fn runtime(config: &Config) -> Finding {
    const AREA: &str = "runtime";
    let found = match config.runtime.kind {
        RuntimeKind::Docker => match stack::connect_docker(config).await {
            Ok(docker) => {
                let socket = Some(config.runtime.socket.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(medforge_runtime_docker::DEFAULT_SOCKET);
                docker.version().await.map(|v| format!("{v} at {socket}")).map_err(|e| e.to_string())
            }
            Err(e) => Err(stack::one_line(&e)),
        },
        RuntimeKind::Podman => match stack::connect_podman(config).await {
            Ok(podman) => podman
                .version()
                .await
                .map(|v| format!("Podman {v} at {}", podman.socket().display()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(stack::one_line(&e)),
        },
    };
    match (found, config.runtime.kind) {
        (Ok(version), _) => Finding::ok(AREA, version),
        (Err(e), RuntimeKind::Docker) => Finding::fail(
            AREA,
            e,
            "install and start the engine (`apt-get install docker.io && systemctl enable --now docker`), \
             or set runtime.socket to where it listens",
        ),
        (Err(e), RuntimeKind::Podman) => Finding::fail(
            AREA,
            e,
            "`apt-get install podman && systemctl enable --now podman.socket`, or set runtime.socket",
        ),
    }
}

pub(super) async fn pack(config: &Config, engine: &str) -> Finding {
    const AREA: &str = "pack image";
    let image = &config.pack.image;
    match stack::image_present(config, image).await {
        Ok(true) => Finding::ok(AREA, format!("{image} is on the engine")),
        Ok(false) => Finding::fail(
            AREA,
            format!("{image} is not on {engine}; sessions cannot start (MedForge never pulls)"),
            match config.runtime.kind {
                RuntimeKind::Docker => format!(
                    "build it: scripts/run.sh does, or `docker build -t {image} infra/packs/default` \
                     (or `docker load` one built elsewhere)"
                ),
                RuntimeKind::Podman => {
                    format!(
                        "build it: `podman build -t {image} infra/packs/default` (or `docker save ... | podman load`)"
                    )
                }
            },
        ),
        Err(e) => Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"),
    }
}

const NVIDIA_FIX_DOCKER: &str = "install the NVIDIA driver and Container Toolkit, then \
    `nvidia-ctk runtime configure --runtime=docker && systemctl restart docker`";
const NVIDIA_FIX_PODMAN: &str = "install the NVIDIA driver and Container Toolkit, then \
    `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`";

/// The finding, and whether the engine has NVIDIA support.
pub(super) async fn nvidia_runtime(config: &Config) -> (Finding, bool) {
    const AREA: &str = "nvidia";
    let fix = match config.runtime.kind {
        RuntimeKind::Docker => NVIDIA_FIX_DOCKER,
        RuntimeKind::Podman => NVIDIA_FIX_PODMAN,
    };
    let support = match stack::nvidia_support(config).await {
        Ok(support) => support,
        Err(e) => return (Finding::fail(AREA, stack::one_line(&e), "see the runtime finding"), false),
    };
    let found = support.is_some();
    let finding = match (config.runtime.gpu_mode, support) {
        (GpuModeSetting::None, _) => Finding::ok(AREA, "runtime.gpu_mode = \"none\": sessions get no GPU"),
        (_, Some(how)) => Finding::ok(AREA, format!("GPUs reach containers through {how}")),
        (GpuModeSetting::Auto, None) => Finding::warn(
            AREA,
            "no NVIDIA container support: sessions start without a GPU (runtime.gpu_mode = \"auto\" falls back to \"none\")",
            format!("{fix}; or set runtime.gpu_mode = \"none\" on a host without GPUs"),
        ),
        (GpuModeSetting::Nvidia, None) => Finding::fail(
            AREA,
            "runtime.gpu_mode = \"nvidia\" but the engine has no NVIDIA container support: every session start fails",
            format!("{fix}; or set runtime.gpu_mode = \"none\""),
        ),
    };
    (finding, found)
}

/// Where GPU readings come from: NVML, or nothing (a warning where it was
/// left to `auto`, a failure where `nvml` was asked for and `serve` would
/// refuse to start).
pub(super) fn telemetry(
    config: &Config,
    opened: &anyhow::Result<std::sync::Arc<dyn GpuTelemetry>>,
    discovered: &Discovery,
) -> Finding {
    const AREA: &str = "telemetry";
    match (opened, discovered) {
        (Err(e), _) => Finding::fail(
            AREA,
            format!("{}; `medforge serve` cannot start", crate::stack::one_line(e)),
            "install the NVIDIA driver (libnvidia-ml.so.1), set telemetry.nvml_library, or telemetry.source = \"auto\"",
        ),
        (Ok(_), Ok(gpus)) => Finding::ok(
            AREA,
            format!(
                "NVML reads {} GPU(s) every {}: {}",
                gpus.len(),
                humantime::format_duration(config.telemetry.interval),
                gpus.iter().map(|g| format!("{} {} ({})", g.index, g.name, g.uuid)).collect::<Vec<_>>().join(", ")
            ),
        ),
        (Ok(_), Err(_)) if config.telemetry.source == TelemetrySource::None => {
            Finding::ok(AREA, "telemetry.source = \"none\": no GPU readings, busy hours are not measured")
        }
        (Ok(_), Err(why)) => Finding::warn(
            AREA,
            format!("no GPU telemetry ({why}): the GPU board shows holders only, busy hours are not measured"),
            "on a GPU host: install the NVIDIA driver, or point telemetry.nvml_library at libnvidia-ml.so.1",
        ),
    }
}

/// What NVML lists, against `gpus.ids` (which must name real GPUs when
/// sessions ask for devices).
pub(super) fn gpus(config: &Config, listed: &Discovery, wants_devices: bool) -> Finding {
    const AREA: &str = "gpus";
    let listed: Result<Vec<GpuId>, String> =
        listed.as_ref().map(|g| g.iter().map(|g| GpuId(g.index)).collect()).map_err(Clone::clone);
    let listed = listed.and_then(|ids| if ids.is_empty() { Err("NVML lists no GPUs".to_owned()) } else { Ok(ids) });
    let fallback;
    let ids = match (&config.gpus.ids, &listed) {
        (GpuIds::Auto(AutoKeyword::Detect), Ok(ids)) => {
            return Finding::ok(AREA, format!("gpus.ids = \"detect\": NVML lists {}", join(ids)));
        }
        // No NVML: the fallback slots, checked as a list would be.
        (GpuIds::Auto(AutoKeyword::Detect), Err(_)) => {
            fallback = GpuIds::List(GpuIds::fallback_slots().iter().map(|g| g.0).collect());
            &fallback
        }
        (ids, _) => ids,
    };
    match (ids, listed) {
        (GpuIds::Auto(_), Ok(ids)) => Finding::ok(AREA, format!("gpus.ids = \"auto\": NVML lists {}", join(&ids))),
        (GpuIds::Auto(_), Err(e)) => Finding::fail(
            AREA,
            format!("gpus.ids = \"auto\" but NVML gives no list ({e}); `medforge serve` cannot start"),
            "install the NVIDIA driver (libnvidia-ml), or list the GPU slots: gpus.ids = [0, 1, ...]",
        ),
        (GpuIds::List(ids), Ok(listed)) => {
            let unknown: Vec<u32> = ids.iter().copied().filter(|i| !listed.iter().any(|l| l.0 == *i)).collect();
            if unknown.is_empty() || !wants_devices {
                Finding::ok(AREA, format!("gpus.ids = {ids:?}; NVML lists {}", join(&listed)))
            } else {
                Finding::fail(
                    AREA,
                    format!("gpus.ids lists {unknown:?}, which NVML does not show ({})", join(&listed)),
                    "make gpus.ids match `nvidia-smi -L` (or use \"auto\")",
                )
            }
        }
        (GpuIds::List(ids), Err(e)) if wants_devices => Finding::fail(
            AREA,
            format!("sessions ask for GPUs {ids:?}, but NVML gives no GPU list here ({e})"),
            "install the NVIDIA driver, or set runtime.gpu_mode = \"none\" on a host without GPUs",
        ),
        (GpuIds::List(ids), Err(_)) => {
            Finding::ok(AREA, format!("{} GPU slots {ids:?}, sessions get no device (no NVML here)", ids.len()))
        }
    }
}

fn join(ids: &[medforge_core::model::GpuId]) -> String {
    ids.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
}
