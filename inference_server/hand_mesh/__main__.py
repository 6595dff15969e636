"""``python -m inference_server.hand_mesh count [--template anny|mano] [--model-dir DIR]`` prints the network's
parameter and multiply-add counts beside the MobRecon paper's; ``export --out FILE.onnx`` writes an (untrained
unless --weights) network to ONNX."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_server.hand_mesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_count = sub.add_parser("count", help="parameters and multiply-adds against the paper's table")
    p_export = sub.add_parser("export", help="write the network to ONNX")
    for p in (p_count, p_export):
        p.add_argument("--template", choices=("anny", "mano"), default="anny")
        p.add_argument("--model-dir", help="the folder with mano/MANO_RIGHT.pkl (for --template mano)")
    p_count.add_argument("--encoder", choices=("densestack", "ghoststack"), action="append")
    p_export.add_argument("--encoder", choices=("densestack", "ghoststack"), default="densestack")
    p_export.add_argument("--weights", help="a checkpoint: ours, or the authors' MobRecon-DenseStack")
    p_export.add_argument("--out", required=True)
    args = parser.parse_args(argv)

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

    model = load_network(template.hierarchy, args.encoder, args.weights)
    export_onnx(model, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
