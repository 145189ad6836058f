"""Every knob skinjax has, with its default: the config schema.

Config files (configs/*.py) start from `get_config()` here and change what
they need; a run's WORKDIR/config.json is read back into it. The returned
ConfigDict is locked: a config file or a `--config.KEY=VALUE` override that
names a key not defined here is refused, so a typo can never be silently
ignored. Allowed values of the string keys are named by the registries that
use them (skinjax.cli.checks lists where).
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0
  # GPU only: deterministic XLA kernels, so the same seed gives the same
  # parameters there as it does on CPU, at a cost in speed
  # (skinjax/parallel/determinism.py).
  config.deterministic = False

  config.dataset = ml_collections.ConfigDict()
  # A name from skinjax.data.DATASETS, optionally with a builder config
  # ('name/config').
  config.dataset.name = 'synthetic_lesions'
  # Where prepared datasets live (array_record files, one folder per dataset).
  config.dataset.data_dir = '~/tensorflow_datasets'
  # Where the user put the raw files of a dataset that cannot be downloaded.
  config.dataset.manual_dir = ''
  # How photo collections are prepared (dermnet, ham10000, image_folder);
  # non-default values are prepared into their own folder.
  config.dataset.max_short_side = 256  # stored JPEGs are at most this small
  # Photos with more pixels are skipped, and reported, from their header:
  # decoding costs up to 12 bytes a pixel (600 MB at 50 Mpx) per worker.
  # Also the limit of evaluate --image_dir and predict.
  config.dataset.max_image_pixels = 50_000_000
  config.dataset.validation_fraction = 0.1  # carved from train if it has none
  config.dataset.test_fraction = 0.2  # carved from train if there is no test
  config.dataset.split_seed = 0  # fixed apart from `seed`: same test set
  # When manual_dir's files have changed since the collection was prepared
  # (a start says so in one line), train prepares it again instead of
  # using it as prepared. Evaluate and predict never re-prepare.
  config.dataset.reprepare = False
  # Class names left out of training, validation and test: the model never
  # sees them, and evaluate scores their photos as unknown conditions
  # (how well the 'unfamiliar' scores find them).
  config.dataset.held_out_classes = ()
  config.dataset.train_split = 'train'
  config.dataset.eval_split = 'validation'  # evaluated during training

  config.input = ml_collections.ConfigDict()
  # Worker processes that decode and augment; 0 decodes in the main process
  # with `num_threads` threads.
  config.input.num_workers = 0
  config.input.worker_buffer_size = 2  # batches each worker keeps ready
  config.input.num_threads = 2  # reading and decoding threads per process
  config.input.prefetch_buffer_size = 64  # elements read ahead per process
  # Batches copied to the devices ahead of the step that takes them, so the
  # copy overlaps the running step (0: copied when the step needs it).
  config.input.device_prefetch = 2

  config.augment = ml_collections.ConfigDict()
  config.augment.crop_scale = (0.35, 1.0)  # random resized crop: area range
  config.augment.crop_ratio = (3 / 4, 4 / 3)  # and aspect ratio range
  config.augment.hflip = True
  config.augment.vflip = True  # skin photos have no canonical up
  config.augment.rot90 = True
  config.augment.brightness = 0.1  # colour jitter: +-fraction
  config.augment.contrast = 0.1
  config.augment.saturation = 0.1
  # Flips, turns and jitter inside the jitted train step instead of on the
  # host (which then only decodes and crops): frees host cores to feed an
  # accelerator. Same distribution, another random stream.
  config.augment.on_device = False
  # Mixup and CutMix in the train step (skinjax/data/mixing.py): the
  # Beta(alpha, alpha) of the partner's share; 0 disables, both set draws
  # one of the two per step.
  config.augment.mixup_alpha = 0.0
  config.augment.cutmix_alpha = 0.0
  # Evaluation: resize so that the centre crop of this fraction of the short
  # side becomes image_size.
  config.augment.eval_crop_fraction = 0.875

  config.model = ml_collections.ConfigDict()
  config.model.name = 'resnet50'  # a name from skinjax.models.MODELS
  config.model.width = 64  # ResNets: filters of the first stage
  # Compute dtype: float32 | bfloat16. Parameters, BatchNorm statistics,
  # logits, softmax and loss stay float32 either way.
  config.model.dtype = 'float32'
  # How convolutions and max-pooling are computed (models.LAYER_FORMS):
  # 'auto' takes the forms measured fastest on XLA:CPU when running on CPU
  # and XLA's native ops (cuDNN) elsewhere; 'cpu' or 'xla' forces one. Same
  # parameters either way.
  config.model.layer_forms = 'auto'
  config.model.dropout_rate = 0.0  # before the classifier
  config.model.drop_path_rate = 0.0  # stochastic depth of the last block
  # Starting weights: '' (random), 'imagenet' (EfficientNet-Lite), a weight
  # file of timm or Hugging Face (.safetensors or .pth: ViT and ConvNeXt,
  # docs/models.md) or the path of a skinjax run or checkpoint; the
  # classifier head is re-initialised when the number of classes differs.
  config.model.init_from = ''
  # Keep BatchNorm's running statistics fixed during training.
  config.model.freeze_batch_stats = False
  # The first N stages (the stem counts as the first) get no gradient and no
  # update, their BatchNorm statistics stay fixed, and XLA skips their
  # backward pass: a cheaper step for fine-tuning from good weights. Only
  # for the first `frozen_until_step` steps when that is > 0, then all of
  # the network trains.
  config.model.frozen_stages = 0
  config.model.frozen_until_step = 0

  # The frozen-feature path (skinjax.training.frozen_features): before any
  # step, the backbone's features of every training photo (in `views`
  # views: the centre crop scoring sees, then views augmented as training
  # augments) and every validation photo are computed once at the scoring
  # size and cached, and the head is fitted on them for `epochs` epochs
  # (AdamW, cosine schedule, class-balanced unless class_balance='none';
  # the epoch with the best validation best_metric kept). The result is
  # checkpoint 0; num_train_steps=0 ends there, more steps fine-tune from
  # it. One process only.
  config.frozen_features = ml_collections.ConfigDict()
  config.frozen_features.enabled = False
  config.frozen_features.views = 1
  config.frozen_features.epochs = 100
  config.frozen_features.batch_size = 256  # of cached features, per update
  config.frozen_features.learning_rate = 1e-3
  config.frozen_features.weight_decay = 1e-4
  # Where the features are kept ('': WORKDIR/feature_cache); runs that share
  # a folder share the features of the same backbone, data and views.
  config.frozen_features.cache_dir = ''
  config.frozen_features.chunk_size = 512  # photos per cache file

  # Extending a trained run with new conditions from a few photos each
  # (python -m skinjax.extend, skinjax/extending/): the old classes' head
  # rows are kept, each new row starts as its photos' mean backbone feature
  # scaled to the old rows' mean norm (bias: the old biases' mean).
  # method 'nearest_mean' stops there; 'head' then fits the head on `views`
  # views of each new training photo (the centre crop, then augmented as
  # training augments, drawn from `seed`) beside `replay_per_class` of the
  # run's training photos per old class (0, or no dataset: none), AdamW for
  # `epochs` epochs, class-balanced, the epoch (0: the start) with the best
  # validation best_metric kept. Only the new rows move unless
  # train_old_rows (and never without replayed photos). `validation_fraction`
  # of each condition's photos (at least one) are carved for validation and
  # calibration, by `seed`.
  config.extend = ml_collections.ConfigDict()
  config.extend.method = 'head'  # head | nearest_mean
  config.extend.validation_fraction = 0.2
  config.extend.seed = 0
  config.extend.views = 4
  config.extend.replay_per_class = 20
  config.extend.train_old_rows = True
  config.extend.epochs = 50
  config.extend.batch_size = 256
  config.extend.learning_rate = 1e-3
  config.extend.weight_decay = 1e-4
  # Where an extended run came from, written by skinjax.extend (empty in a
  # trained run): the parent run folder, the checkpoint step, weights and
  # head digest extended, the classes added, how many of the parent's
  # training photos were replayed, and every new photo used as
  # (class, sha256 of the file), split into training and validation.
  config.extension = ml_collections.ConfigDict()
  config.extension.parent = ''
  config.extension.parent_step = -1
  config.extension.parent_weights = ''
  config.extension.parent_params_digest = ''
  config.extension.classes_added = ()
  config.extension.replayed_photos = 0
  config.extension.train_photos = ()
  config.extension.validation_photos = ()

  # JAX's persistent compilation cache for every command (a later start of
  # the same program reads its compiled steps from here); '' turns it off.
  # The environment variable JAX_COMPILATION_CACHE_DIR, when set, wins.
  config.compilation_cache_dir = '~/.cache/skinjax/jax_compilation'

  config.image_size = 224
  # Validation, evaluate, predict, serve and export score photos at this
  # size (0: image_size). Larger than the training size pays off: random
  # crops show lesions bigger than centre crops do (Touvron et al. 2019).
  config.eval_image_size = 0
  # Progressive resizing: ((size, until_step), ...) trains at each size up
  # to and including its step, then at image_size; e.g. ((80, 300),
  # (96, 600)). One input pipeline and one compiled step per size.
  config.progressive_resizing = ()
  config.batch_size = 128  # global, over all devices and processes
  config.eval_batch_size = 256  # global
  config.num_train_steps = 20_000
  # Micro-batches per step: each device's share of batch_size is split into
  # this many, their gradients averaged before one update (same learning
  # rate, less memory). BatchNorm sees each micro-batch on its own.
  config.grad_accum_steps = 1
  # Exponential moving average of the weights (and BatchNorm statistics),
  # validated beside the raw ones (val_ema/*) and checkpointed; 0 disables.
  # Averages over about 1 / (1 - decay) steps, ramped up early on as
  # min(decay, (1 + step) / (10 + step)).
  config.ema_decay = 0.0
  # A step whose loss or gradients are NaN/Inf never changes the weights.
  # False stops training there with a message (the last checkpoint is kept);
  # True skips that batch and goes on.
  config.skip_nonfinite_steps = False

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'sgd'  # sgd | adamw
  config.optimizer.learning_rate = 0.1  # peak, after warmup
  config.optimizer.warmup_steps = 1_000
  config.optimizer.end_learning_rate_factor = 0.0  # cosine decays to lr * this
  config.optimizer.weight_decay = 1e-4  # on kernels only, never on BN or biases
  config.optimizer.momentum = 0.9  # sgd
  config.optimizer.nesterov = True  # sgd
  config.optimizer.b1 = 0.9  # adamw
  config.optimizer.b2 = 0.999  # adamw
  config.optimizer.eps = 1e-8  # adamw
  config.optimizer.grad_clip_norm = 0.0  # 0 disables clipping
  # Learning rate of everything but the classifier head, as a fraction of
  # the head's: 1 trains all alike, 0.1 fine-tunes gently, 0 freezes the
  # backbone (a linear probe).
  config.optimizer.backbone_learning_rate_factor = 1.0
  # Layer-wise learning-rate decay (ViT and ConvNeXt): the head and final
  # norm learn at the schedule's rate, each layer below at `layer_decay`
  # times the one above (the last ViT block 0.75x, the embedding 0.75^13x
  # for ViT-S at 0.75). 1 disables.
  config.optimizer.layer_decay = 1.0
  config.label_smoothing = 0.1
  # Class imbalance: 'none', 'loss_weights' (each class weighs the same in
  # the loss) or 'sampling' (each class is drawn equally often).
  config.class_balance = 'none'

  # skinjax.evaluate and skinjax.predict (training's validation stays plain).
  config.evaluation = ml_collections.ConfigDict()
  # Test-time augmentation, averaging log-probabilities over views: 'none',
  # 'flips' (4 views) or 'dihedral' (8: flips and 90-degree rotations).
  config.evaluation.tta = 'none'
  config.evaluation.calibration_bins = 15  # equal-width bins of the ECE
  # Selective prediction: the confidence threshold is the lowest that keeps
  # the error of accepted validation predictions at most this; predictions
  # below it are flagged 'uncertain'.
  config.evaluation.max_risk = 0.1
  # The 'unfamiliar' flag (a photo unlike the training data: an unknown
  # condition, another modality, not skin): the score it uses ('msp',
  # 'energy' or 'mahalanobis', see skinjax/evaluation/unfamiliar.py), and the
  # share of validation photos it leaves unflagged.
  config.evaluation.unfamiliar_score = 'mahalanobis'
  config.evaluation.unfamiliar_tpr = 0.95
  # Training photos (evenly spaced, at most this many) the Mahalanobis class
  # means and covariance are fitted on, once per checkpoint.
  config.evaluation.unfamiliar_fit_examples = 5000
  # Resamples of the bootstrap intervals of the results by skin tone.
  config.evaluation.bootstrap_resamples = 200
  # At the end of training, fit the calibration of the checkpoint that
  # `--checkpoint best` picks (and of its moving average, if kept), so the
  # run folder alone predicts, serves and exports; other checkpoints are
  # calibrated by `evaluate --checkpoint STEP`.
  config.evaluation.calibrate_after_training = True
  # The quality gate (skinjax/inference/quality.py), judged on every photo
  # and frame before it is scored, without the model: chosen on real photos
  # blurred, darkened and brightened at graded strengths
  # (experiments/quality_gate/). 'blurred' and 'no skin in view' are
  # relative to the run's own photos, fitted with its calibration: each
  # flags this share of the validation photos.
  config.evaluation.quality = ml_collections.ConfigDict()
  config.evaluation.quality.blur_refuse_share = 0.01
  # 'too dark' also where a photo's bright end (99th percentile of luma)
  # is below dark_margin times that of all but dark_refuse_share of the
  # validation photos: without the margin, well-lit photos of the darkest
  # skin tones, which make that tail, were refused up to 17 times as often.
  config.evaluation.quality.dark_refuse_share = 0.01
  config.evaluation.quality.dark_margin = 0.7
  config.evaluation.quality.skin_refuse_share = 0.02
  # Training photos (evenly spaced, at most this many) the appearance of
  # 'skin in view' is fitted on, and validation photos its threshold is.
  config.evaluation.quality.fit_examples = 1000
  # 'too dark': more than max_dark_share of the pixels at CIELAB lightness
  # dark_level or below; 'too bright': more than max_bright_share with
  # every channel at bright_level or above (blown out).
  config.evaluation.quality.dark_level = 10.0
  config.evaluation.quality.max_dark_share = 0.6
  config.evaluation.quality.bright_level = 250
  config.evaluation.quality.max_bright_share = 0.3

  # skinjax.serve, the HTTP service (its address is a flag: --host, --port).
  config.serve = ml_collections.ConfigDict()
  # Waiting photos of all requests are scored together, at most this many
  # at a time, padded to a power of two (times the device count): jit
  # compiles one program per batch shape, all of them at start.
  config.serve.max_batch_size = 32
  # How long the first photo of a batch waits for others to join it.
  config.serve.max_wait_ms = 5.0
  config.serve.max_photos_per_request = 16  # more are refused (413)
  # A larger request body is refused (413) before it is read.
  config.serve.max_request_bytes = 32 * 2**20
  # Bodies are held in memory (once each) as they arrive; past this many
  # bytes of all requests together, a request is answered 503 at once.
  config.serve.max_body_bytes_in_flight = 256 * 2**20
  # A request's photos may hold this many pixels in all (from their
  # headers, before any is decoded; 413 beyond): a request's decode time is
  # bounded, whatever its bytes. Each photo is also bounded by
  # dataset.max_image_pixels.
  config.serve.max_request_pixels = 100_000_000
  # Requests being scored (decoded, on the device) at a time; later ones
  # wait their turn within their deadline.
  config.serve.max_concurrent_requests = 32
  # A request not answered this many seconds after its body arrived gets
  # 504 with a message, and its work still waiting is dropped.
  config.serve.request_deadline_s = 30.0
  # Photos decoded (and Grad-CAM overlays drawn) at a time, taken in turn
  # from each waiting request (one request's sixteen photos do not hold up
  # another's one); each decode holds up to 12 bytes a pixel of a photo.
  config.serve.decode_threads = 2
  # Open connections at a time (idle and slow ones included): at the cap,
  # the oldest connection with no request in progress is closed for a new
  # one, and without one the new one is closed.
  config.serve.max_connections = 512
  # A request's headers must arrive within this many seconds of the
  # connection opening (or of the previous response, on a kept-alive one).
  config.serve.header_timeout_s = 10.0
  # A kept-alive connection that sends nothing for this long is closed.
  config.serve.keep_alive_s = 5.0
  # A request body must arrive at this many bytes a second at least, over
  # every window of body_rate_window_s seconds; a slower one is cut off.
  config.serve.body_min_bytes_per_s = 16 * 2**10
  config.serve.body_rate_window_s = 5.0
  # Host headers answered (others get 400, against DNS rebinding): the
  # loopback names, and --host when it names one address. Comma-separated.
  config.serve.allowed_hosts = 'localhost,127.0.0.1,[::1]'
  # A client that sends this many wrong tokens within token_lockout_s
  # seconds is answered 429 for token_lockout_s seconds.
  config.serve.token_failures = 10
  config.serve.token_lockout_s = 60.0
  # HTTPS: a PEM certificate (chain) and its private key; both or neither.
  config.serve.tls_certificate = ''
  config.serve.tls_key = ''
  # After the device thread dies, /healthz and every request answer 503
  # for this many seconds, then the process exits with status 70 so its
  # supervisor can restart it.
  config.serve.device_failure_exit_s = 10.0
  # /healthz answers 503 when the device thread has had work waiting this
  # long without finishing a batch.
  config.serve.device_stall_s = 60.0
  config.serve.top_k = 3  # classes listed per photo

  config.log_every_steps = 50
  config.eval_every_steps = 1_000
  config.checkpoint_every_steps = 1_000
  config.keep_checkpoints = 3  # the latest K, plus the best one
  # Validation metric that picks the best checkpoint (higher is better).
  config.best_metric = 'top1'

  config.wandb = ml_collections.ConfigDict()
  # online | offline | disabled. online falls back to offline when no API key
  # is configured (WANDB_API_KEY or `wandb login`).
  config.wandb.mode = 'online'
  config.wandb.project = 'skinjax'
  config.wandb.entity = ''  # your W&B user or team; '' for the default
  config.wandb.name = ''  # run name; '' lets W&B pick one
  # Runs of one experiment (a sweep's trials: the sweep's name), shown and
  # averaged together in W&B; '' for none.
  config.wandb.group = ''
  config.wandb.tags = ()
  config.wandb.notes = ''  # free text: what this run is for

  config.lock()
  return config


# When a key (or a whole group) may change after a run has started; every
# key not named here is 'training': it decides which weights the steps
# produce, so neither a resume nor an evaluation may change it.
#   'anytime': where files are, how runs are logged, how a checkpoint is
#     scored and served: on resume and at evaluation.
#   'scoring': how a checkpoint is scored only; at evaluation, never on
#     resume (there it would change training).
#   'bookkeeping': what is logged, validated and kept; on resume.
# skinjax.run_folder.run_config derives what evaluation and a resume may
# change from it (EVALUATION_KEYS, RESUME_KEYS).
PHASES = {
    'input': 'anytime',
    'wandb': 'anytime',
    'dataset.data_dir': 'anytime',
    'dataset.manual_dir': 'anytime',
    'evaluation': 'anytime',
    'serve': 'anytime',
    'frozen_features.cache_dir': 'anytime',
    'compilation_cache_dir': 'anytime',
    'eval_batch_size': 'anytime',
    'eval_image_size': 'anytime',
    'augment.eval_crop_fraction': 'anytime',
    'image_size': 'scoring',  # test-time resolution
    'model.layer_forms': 'scoring',  # the same numbers in other layer forms
    'dataset.max_image_pixels': 'scoring',
    'log_every_steps': 'bookkeeping',
    'eval_every_steps': 'bookkeeping',
    'checkpoint_every_steps': 'bookkeeping',
    'keep_checkpoints': 'bookkeeping',
}
