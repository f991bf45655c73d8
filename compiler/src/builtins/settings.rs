//! Signatures of the settings lines in `data` and `train` items that take arguments
//! (`split val: 0.1, seed: 7`, `checkpoint every: 5, keep: 2`). They are not callable
//! built-ins; they share the argument binder and the reference documentation.

use super::{Builtin, Default, Kind, ParamType, param, spec_rule};

const METRIC_NAMES: &[&str] = &["loss", "accuracy", "precision", "recall", "f1"];

pub const SETTINGS: &[Builtin] = &[
    Builtin {
        name: "split",
        kind: Kind::Constructor,
        summary: "Hold out a fraction of the source as the validation set (data).",
        inputs: &[],
        params: &[
            param(
                "val",
                ParamType::Probability,
                Default::Required,
                "fraction of samples for validation",
            ),
            param(
                "seed",
                ParamType::Int,
                Default::Int(0),
                "seed of the random split",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "shuffle",
        kind: Kind::Constructor,
        summary: "Shuffle training samples each epoch (data).",
        inputs: &[],
        params: &[param(
            "seed",
            ParamType::Int,
            Default::Int(0),
            "seed of the shuffle",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "epochs",
        kind: Kind::Constructor,
        summary: "Number of passes over the training data (train).",
        inputs: &[],
        params: &[param(
            "count",
            ParamType::Size,
            Default::Required,
            "number of epochs",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "batch",
        kind: Kind::Constructor,
        summary: "Samples per step; the symbolic dimension `B` (train).",
        inputs: &[],
        params: &[param(
            "size",
            ParamType::Size,
            Default::Required,
            "batch size",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "seed",
        kind: Kind::Constructor,
        summary: "Seed of parameter initialisation, dropout and noise (train).",
        inputs: &[],
        params: &[param(
            "value",
            ParamType::Int,
            Default::Required,
            "the seed",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "clip_grad_norm",
        kind: Kind::Constructor,
        summary: "Rescale gradients so their global L2 norm is at most `max_norm` (train).",
        inputs: &[],
        params: &[param(
            "max_norm",
            ParamType::Positive,
            Default::Required,
            "largest gradient norm",
        )],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "checkpoint",
        kind: Kind::Constructor,
        summary: "Save weights and optimizer state during training (train).",
        inputs: &[],
        params: &[
            param(
                "every",
                ParamType::Size,
                Default::Int(1),
                "epochs between checkpoints",
            ),
            param(
                "keep",
                ParamType::Size,
                Default::Int(3),
                "how many recent checkpoints to keep",
            ),
            param(
                "best",
                ParamType::Word(METRIC_NAMES),
                Default::Absent,
                "also keep the best checkpoint by this validation metric",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
    Builtin {
        name: "sample",
        kind: Kind::Constructor,
        summary: "Save an image grid of a tensor (such as `Generator(z)`) during training (train).",
        inputs: &[],
        params: &[
            param(
                "every",
                ParamType::Size,
                Default::Int(1),
                "epochs between grids",
            ),
            param(
                "to",
                ParamType::Str,
                Default::Str("samples"),
                "folder inside the run directory",
            ),
        ],
        shape_rule: "",
        rule: spec_rule,
    },
];
