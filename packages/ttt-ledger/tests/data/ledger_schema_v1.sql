-- A ledger written by ttt-ledger 0.1.0 (schema version 1) before runs could be
-- interrupted; test_store.py checks that this file still opens and resumes.
BEGIN TRANSACTION;
CREATE TABLE eval_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    result_json TEXT NOT NULL,
    FOREIGN KEY (exp_folder, run_id) REFERENCES runs (exp_folder, run_id)
);
INSERT INTO "eval_results" VALUES(1,'old','Q-S3','{"name": "heldout", "metrics": {"loss": 5.25, "tokens": 2048.0, "sequences": 2.0}, "context_length": 8192, "per_position_nll": [5.5, 5.0], "recorded_at": "2026-12-01T09:02:28.300+00:00"}');
CREATE TABLE ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "ledger_meta" VALUES('schema_version','1');
INSERT INTO "ledger_meta" VALUES('created_at','2026-12-01T09:02:28.277+00:00');
CREATE TABLE metric_points (
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    tokens_seen INTEGER NOT NULL,
    wall_clock_s REAL NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (exp_folder, run_id, name, step),
    FOREIGN KEY (exp_folder, run_id) REFERENCES runs (exp_folder, run_id)
);
INSERT INTO "metric_points" VALUES('old','Q-S3','loss',4,4096,2.0,5.5);
INSERT INTO "metric_points" VALUES('old','Q-S4','loss',2,2048,1.5,5.125);
CREATE TABLE runs (
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    family TEXT NOT NULL,
    status TEXT NOT NULL,
    record_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (exp_folder, run_id)
);
INSERT INTO "runs" VALUES('old','Q-A1','qwen2_5_0_5b','failed','{"best_metrics": {}, "checkpoint_source": "import-qwen05-fa-base", "config_hash": null, "config_name": "external/qwen2_5_0_5b/pretrain-fa-import-8K", "context_length": 8192, "created_at": "2026-12-01T09:02:28.288+00:00", "data_root": "dclm", "device_count": 1, "device_kind": "cpu", "exp_folder": "old", "failure_reason": "missing source checkpoint import-qwen05-fa-base", "family": "qwen2_5_0_5b", "final_metrics": {}, "finished_at": "2026-12-01T09:02:28.320+00:00", "git_commit": null, "model_kind": "fa", "output_checkpoint": "pretrain-qwen05-fa-import-8K", "package_versions": {}, "parent_run_ids": [], "path": "adapter", "planned_steps": 8, "recipe": "fa", "restore": {"kind": "params", "step": null}, "run_id": "Q-A1", "stage": "pretrain", "started_at": "2026-12-01T09:02:28.316+00:00", "status": "failed", "steps_completed": 0, "tokens_seen": 0, "train_mode": "pretrain", "updated_at": "2026-12-01T09:02:28.320+00:00", "wall_clock_s": 0.0}','2026-12-01T09:02:28.288+00:00','2026-12-01T09:02:28.320+00:00');
INSERT INTO "runs" VALUES('old','Q-S3','qwen2_5_0_5b','completed','{"best_metrics": {"heldout_loss": 5.25, "loss": 5.375}, "checkpoint_source": null, "config_hash": null, "config_name": "external/qwen2_5_0_5b/pretrain-e2e-scratch-8K", "context_length": 8192, "created_at": "2026-12-01T09:02:28.289+00:00", "data_root": "dclm", "device_count": 1, "device_kind": "cpu", "exp_folder": "old", "failure_reason": null, "family": "qwen2_5_0_5b", "final_metrics": {"heldout_loss": 5.25, "loss": 5.375}, "finished_at": "2026-12-01T09:02:28.304+00:00", "git_commit": null, "model_kind": "e2e", "output_checkpoint": "pretrain-qwen05-e2e-scratch-8K", "package_versions": {}, "parent_run_ids": [], "path": "scratch", "planned_steps": 8, "recipe": null, "restore": {"kind": "fresh", "step": null}, "run_id": "Q-S3", "stage": "pretrain", "started_at": "2026-12-01T09:02:28.292+00:00", "status": "completed", "steps_completed": 8, "tokens_seen": 8192, "train_mode": "meta", "updated_at": "2026-12-01T09:02:28.304+00:00", "wall_clock_s": 4.0}','2026-12-01T09:02:28.289+00:00','2026-12-01T09:02:28.304+00:00');
INSERT INTO "runs" VALUES('old','Q-S4','qwen2_5_0_5b','running','{"best_metrics": {"loss": 5.125}, "checkpoint_source": "pretrain-qwen05-e2e-scratch-8K", "config_hash": null, "config_name": "external/qwen2_5_0_5b/ext-e2e-32K-from-scratch", "context_length": 32768, "created_at": "2026-12-01T09:02:28.289+00:00", "data_root": "books", "device_count": 1, "device_kind": "cpu", "exp_folder": "old", "failure_reason": null, "family": "qwen2_5_0_5b", "final_metrics": {}, "finished_at": null, "git_commit": null, "model_kind": "e2e", "output_checkpoint": "ext-qwen05-e2e-32K-from-scratch", "package_versions": {}, "parent_run_ids": ["Q-S3"], "path": "scratch", "planned_steps": 4, "recipe": null, "restore": {"kind": "params", "step": null}, "run_id": "Q-S4", "stage": "ext", "started_at": "2026-12-01T09:02:28.308+00:00", "status": "running", "steps_completed": 2, "tokens_seen": 2048, "train_mode": "meta", "updated_at": "2026-12-01T09:02:28.310+00:00", "wall_clock_s": 1.5}','2026-12-01T09:02:28.289+00:00','2026-12-01T09:02:28.310+00:00');
CREATE INDEX eval_results_by_run ON eval_results (exp_folder, run_id, seq);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('eval_results',1);
COMMIT;
