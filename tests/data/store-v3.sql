-- A results store of schema version 3, written by the code before evaluations had one key (EvalSpec):
-- two design points, evaluations under every BN protocol and several fault models, a cost, and done jobs.
-- tests/test_store.py opens a copy and checks that every row is migrated.
BEGIN TRANSACTION;
CREATE TABLE costs (
    network TEXT NOT NULL, width REAL NOT NULL, shortcut_kernel INTEGER NOT NULL, mapping TEXT NOT NULL,
    cost_model TEXT NOT NULL, latency_ns REAL NOT NULL, energy_uj REAL NOT NULL,
    crossbars INTEGER, chips INTEGER, detail TEXT NOT NULL,
    PRIMARY KEY (network, width, shortcut_kernel, mapping, cost_model)
);
INSERT INTO "costs" VALUES('resnet20',1.0,1,'default','paper',10.0,2.0,NULL,NULL,'{"totals": {"latency_ns": 10.0, "energy_uj": 2.0}}');
CREATE TABLE design_points (
    point_id TEXT PRIMARY KEY,
    network TEXT NOT NULL, width REAL NOT NULL, shortcut_kernel INTEGER NOT NULL,
    mapping TEXT NOT NULL, dropconnect REAL NOT NULL,
    checkpoint TEXT,               -- path of the trained model, NULL while untrained
    checkpoint_sha TEXT,           -- the checkpoint's tensor digest: which weights the results belong to
    file_stamp TEXT,               -- size:mtime of the file when it was verified
    seed INTEGER, epochs INTEGER, train_time_s REAL,
    fault_free_accuracy REAL,      -- float weights, BN statistics for p' = 0
    calibrated_rates TEXT,         -- JSON list
    error TEXT,                    -- why the checkpoint could not be read, if it could not
    updated REAL NOT NULL
);
INSERT INTO "design_points" VALUES('97081366f1217fe8','resnet20',1.0,1,'default',0.3,'/ck/resnet20-w1-k1-default-p0.3-s0.safetensors','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','1:2',0,3,5.0,88.5,'[0.0, 0.1, 0.2, 0.3]',NULL,1.79667114795178818704e+09);
INSERT INTO "design_points" VALUES('6b47fc4852cea3e9','vgg13',1.2,1,'1x1-on-crossbar',0.0,'/ck/vgg13-w1.2-k1-1x1-on-crossbar-p0-s0.safetensors','bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','1:2',0,3,5.0,88.5,'[0.0, 0.1, 0.2, 0.3]',NULL,1.79667114795383071898e+09);
CREATE TABLE evaluations (
    point_id TEXT NOT NULL REFERENCES design_points(point_id),
    checkpoint_sha TEXT NOT NULL,
    fault_rate REAL NOT NULL, fault_model TEXT NOT NULL, protocol TEXT NOT NULL, seed INTEGER NOT NULL,
    recalibrate INTEGER NOT NULL, rescale INTEGER NOT NULL, test_images INTEGER NOT NULL,
    bn TEXT NOT NULL DEFAULT 'paper',        -- BN statistics: paper (Algorithm 1) | chip (per chip) | batch
    calib_images INTEGER NOT NULL DEFAULT 0, -- training images each chip calibrated on (chip), else 0
    n INTEGER NOT NULL, mean REAL, std REAL, ci95 REAL, ci_low REAL, ci_high REAL,
    p5 REAL, worst REAL, best REAL, quantized_accuracy REAL, bn_rate REAL,
    accuracies TEXT NOT NULL,      -- JSON list, one accuracy per crossbar instance
    time_s REAL, updated REAL NOT NULL,
    precision TEXT,                -- arithmetic the evaluation ran in: fp32, bf16 or int8, NULL if not recorded
    PRIMARY KEY (point_id, checkpoint_sha, fault_rate, fault_model, protocol, seed, recalibrate, rescale, test_images,
                 bn, calib_images)
);
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.1,'sa1','fixed(4)',0,1,1,10000,'paper',0,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,0.1,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114888204383854e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.1,'sa1','adaptive(0.5)',0,1,1,10000,'paper',0,3,80.5,0.5,1.24206885587516513425e+00,7.92579311441248393057e+01,8.17420688558751606933e+01,80.05,80.0,81.0,86.25,0.1,'[80.0, 81.0, 80.5]',1.5,1.79667114888486337664e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.1,'sa1','fixed(4)',0,1,1,10000,'chip',500,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,NULL,'[80.0, 81.5, 79.25, 82.0]',1.5,1.7966711488869106769e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.1,'sa1','fixed(4)',0,1,1,10000,'chip',32,2,70.5,7.07106781186547572737e-01,6.35310236808734707381e+00,6.41468976319126511515e+01,7.68531023680873488519e+01,70.05,70.0,71.0,86.25,NULL,'[70.0, 71.0]',1.5,1.79667114888881540297e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.2,'sa1','fixed(4)',0,1,1,10000,'batch',0,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,NULL,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114889053368574e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.2,'clustered:8+remap:4','fixed(4)',0,1,1,1000,'chip',500,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,NULL,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114889238262176e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.2,'sa0','fixed(4)',3,1,1,10000,'paper',0,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,0.2,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114889411234858e+09,'bf16');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.3,'sa1','fixed(4)',0,0,0,10000,'paper',0,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,0.3,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114889578294757e+09,'fp32');
INSERT INTO "evaluations" VALUES('97081366f1217fe8','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',0.0,'sa1','fixed(4)',0,1,1,10000,'paper',0,1,86.0,0.0,NULL,NULL,NULL,86.0,86.0,86.0,86.25,0.0,'[86.0]',1.5,1.79667114889749026298e+09,'fp32');
INSERT INTO "evaluations" VALUES('6b47fc4852cea3e9','bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',0.1,'sa1+bpc:2','fixed(4)',0,1,1,2000,'paper',0,4,80.6875,1.28086884574494974664e+00,2.03814816284701150195e+00,7.86493518371529916084e+01,8.27256481628470083898e+01,79.3625,79.25,82.0,86.25,0.1,'[80.0, 81.5, 79.25, 82.0]',1.5,1.79667114889918637281e+09,NULL);
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- train | evaluate
    point_id TEXT NOT NULL,
    config TEXT NOT NULL,          -- JSON: everything the worker needs
    state TEXT NOT NULL,           -- queued | running | done | failed | cancelled
    progress REAL NOT NULL DEFAULT 0, message TEXT, eta_s REAL, pid INTEGER, error TEXT,
    source TEXT,                   -- app | sweep | cli
    result TEXT,                   -- JSON, for jobs whose answer is small (layer sensitivity)
    created REAL NOT NULL, updated REAL NOT NULL
);
INSERT INTO "jobs" VALUES('7dbd90e13224743e','evaluate','97081366f1217fe8','{"adaptive": null, "bn": "chip", "calib_images": 500, "checkpoint": "/ck/resnet20-w1-k1-default-p0.3-s0.safetensors", "data": "/d/cifar", "device": "auto", "fault_rates": [0.1], "instances": 100, "seed": 0, "test_images": null}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114890262842171e+09,1.79667114890418767921e+09);
INSERT INTO "jobs" VALUES('ac5c2a94bec6e8ce','evaluate','97081366f1217fe8','{"adaptive": 0.5, "bn": "paper", "calib_images": 0, "checkpoint": "/ck/resnet20-w1-k1-default-p0.3-s0.safetensors", "data": "/d/cifar", "device": "cpu", "fault_rates": [0.2], "instances": 20, "seed": 0, "test_images": 1000}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114890585494042e+09,1.79667114890750050548e+09);
INSERT INTO "jobs" VALUES('f670c61dab9e434d','evaluate','97081366f1217fe8','{"adaptive": null, "bn": "chip", "calib_images": 32, "checkpoint": "/ck/vgg13-w1.2-k1-1x1-on-crossbar-p0-s0.safetensors", "data": "/d/cifar", "device": "auto", "fault_model": "rows+remap:8", "fault_rates": [0.3], "instances": 5, "precision": "int8", "seed": 2, "test_images": null}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114890953683852e+09,1.79667114891131091116e+09);
INSERT INTO "jobs" VALUES('ef15213889026f47','evaluate','97081366f1217fe8','{"adaptive": null, "checkpoint": "/ck/resnet20-w1-k1-default-p0.3-s0.safetensors", "data": "/d/cifar", "device": "auto", "fault_rates": [0.1], "instances": 10, "seed": 0, "test_images": null}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114891294527057e+09,1.7966711489145343304e+09);
INSERT INTO "jobs" VALUES('a37118c2c3accdc8','train','97081366f1217fe8','{"batch_size": null, "calib_images": null, "calib_rates": null, "data": "/d/cifar", "device": "auto", "epochs": 3, "half": false, "init": null, "lr": null, "max_train_images": null, "out": "/ck/resnet20-w1-k1-default-p0.3-s0.safetensors", "point": {"dropconnect": 0.3, "mapping": "default", "network": "resnet20", "shortcut_kernel": 1, "width": 1.0}, "recipe": "converged", "seed": 0}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114891624474532e+09,1.796671148918056488e+09);
INSERT INTO "jobs" VALUES('b6ad0ac451b2faec','sensitivity','97081366f1217fe8','{"checkpoint": "/ck/resnet20-w1-k1-default-p0.3-s0.safetensors", "data": "/d/cifar", "device": "auto", "fault_rate": 0.1, "instances": 3, "seed": 0, "test_images": 2000}','done',1.0,'done',NULL,NULL,NULL,'cli',NULL,1.79667114891986894609e+09,1.79667114892154622081e+09);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','3');
CREATE INDEX evaluations_point ON evaluations(point_id);
COMMIT;
