"""``netpress export model.netp --onnx model.onnx``: ONNX with int8 QDQ weights, checked in onnxruntime."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a .netp file to ONNX (int8 weights as DequantizeLinear), "
                                      "checked against netpress in onnxruntime")
    p.add_argument("path", help="the .netp file (a registry model)")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument("--batch", type=int, default=1, help="batch size of the check input (default 1)")
    p.add_argument("--requant-tol", type=float, default=0.01,
                   help="largest int8 re-quantization error (of a row's max) for k-means weights; 0 = exact only")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from netpress.runtime import export_file

    r = export_file(args.path, args.onnx, batch=args.batch, requant_tol=args.requant_tol)
    human = (f"wrote {r['path']} ({r['bytes']:,} bytes): {len(r['quantized'])} int8 QDQ weights, "
             f"{len(r['float'])} kept float; re-quantization error <= {r['max_error']:.2e}\n"
             f"onnxruntime vs netpress: max |diff| {r['max_abs_diff']:.3g} (outputs up to {r['max_abs_output']:.3g})")
    common.emit(r, args.json, human)
    return 0
