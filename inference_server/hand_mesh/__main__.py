"""The hand-mesh network's commands: ``count`` (parameters and multiply-adds beside the MobRecon paper's),
``synth`` (synthetic training crops), ``train`` (``train --help``), ``export --out FILE.onnx [--weights CKPT]``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        from .train import main as train_main

        return train_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m inference_server.hand_mesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_count = sub.add_parser("count", help="parameters and multiply-adds against the paper's table")
    p_export = sub.add_parser("export", help="write the network to ONNX")
    sub.add_parser("train", help="train on synthetic crops (train --help)", add_help=False)
    for p in (p_count, p_export):
        p.add_argument("--template", choices=("anny", "mano"), default="anny")
        p.add_argument("--model-dir", help="the folder with mano/MANO_RIGHT.pkl (for --template mano)")
    p_count.add_argument("--encoder", choices=("densestack", "ghoststack"), action="append")
    p_export.add_argument("--encoder", choices=("densestack", "ghoststack"), default="densestack")
    p_export.add_argument("--weights", help="a checkpoint: ours, or the authors' MobRecon-DenseStack")
    p_export.add_argument("--out", required=True)
    p_export.add_argument("--half", action="store_true",
                          help="store the large weights as float16 (half the file; the arithmetic stays float32)")
    p_synth = sub.add_parser("synth", help="make synthetic training crops (shards of .npz)")
    p_synth.add_argument("--out", required=True, help="folder for the shards (resumes: existing shards are kept)")
    p_synth.add_argument("--count", type=int, default=10240)
    p_synth.add_argument("--seed", type=int, default=0)
    p_synth.add_argument("--backgrounds", help="a folder of JPG/PNG photos to use as backgrounds (optional)")
    p_synth.add_argument("--preview", help="write a contact sheet of the first shard's samples to this PNG")
    args = parser.parse_args(argv)
    if args.command == "synth":
        return _synth(args)

    from ..config import prepare_environment
    from ..protocol import RpcError
    from .template import load_template

    prepare_environment()
    try:
        template = load_template(args.template, args.model_dir)
    except RpcError as exc:
        print(f"error: {exc.message}\nfix: {exc.fix}", file=sys.stderr)
        return 2
    if args.command == "count":
        from .counts import count, table

        rows = [count(template.hierarchy, e) for e in (args.encoder or ["densestack", "ghoststack"])]
        print(table(rows, template.name, template.hierarchy.sizes[0]))
        return 0
    from .export import export_onnx, load_network

    from .export import load_joint_regressor

    model = load_network(template.hierarchy, args.encoder, args.weights)
    export_onnx(model, args.out, joint_regressor=load_joint_regressor(args.weights) if args.weights else None)
    if args.half:
        from ..motion_net import half_weights

        half_weights(args.out)
    print(f"wrote {args.out}")
    return 0


def _synth(args) -> int:
    import time

    import numpy as np

    from ..config import prepare_environment
    from . import synth

    prepare_environment()
    photos = synth.load_photos(args.backgrounds) if args.backgrounds else None
    t0 = time.time()

    def progress(done: int, total: int) -> None:
        rate = done * synth.SHARD_SIZE / max(time.time() - t0, 1e-9)
        print(f"shard {done}/{total} ({rate:.0f} samples/s)", flush=True)

    paths = synth.write_shards(args.out, args.count, args.seed, photos, progress)
    if args.preview and paths:
        with np.load(paths[0]) as z:
            synth.contact_sheet({k: z[k][:24] for k in ("image", "mask", "joints2d")}, args.preview)
        print(f"wrote {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
