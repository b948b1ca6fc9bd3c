# Runtime settings shared by every config: hooks, logging, visualisation.
default_scope = 'bidl_train'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the best top-1 checkpoint and the last few epochs; files are
    # written through a temporary file + rename (a kill while saving never
    # leaves a torn file) and old ones are removed only after a new one is
    # saved (a full disk never leaves fewer than max_keep_ckpts)
    checkpoint=dict(
        type='SaveThenPruneCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='accuracy/top1',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # warn (console, TensorBoard text health/warning and health/* scalars)
    # when a spiking layer stays silent or saturated, the loss stops moving
    # or a layer's gradient vanishes, once per layer, with the usual fix;
    # in bidl-test, per silent/saturated layer over the test set
    # (TrainingHealthHook's docstring lists the settings); tune with
    # default_hooks = dict(health=dict(patience=5)), turn off with
    # default_hooks = dict(health=None)
    health=dict(type='TrainingHealthHook'),
)
custom_hooks = [
    # stop at the first NaN/Inf loss, parameter or buffer (checked after every
    # iteration and before every save) or when the loss exceeds 1000 x the
    # median of its first 20 iterations, before a poisoned checkpoint is
    # written; the error names the last checkpoint verified finite
    dict(type='NanGuardHook', divergence_factor=1e3, reference_iters=20),
    # per-epoch seeding: kill + resume reproduces the uninterrupted run
    dict(type='EpochSeedHook'),
    # a progress bar with ETA on interactive terminals (silent in CI logs)
    dict(type='ProgressBarHook'),
    # firing rates, silent/saturated fractions, raster, membrane histograms
    # and the confusion matrix in TensorBoard
    dict(type='SpikeMonitorHook', interval=50),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True, window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
