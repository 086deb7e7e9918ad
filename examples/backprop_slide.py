"""The lecture's backpropagation slide, step by step, checked against ``sg.grad``.

    f(x, y, z) = (x + y) * z   at   x = -2, y = 5, z = -4

Forward pass through the graph q = x + y, f = q * z; then the backward pass from
df/df = 1, where every gradient is (upstream gradient) x (local gradient).  The local
gradients are themselves derived by symgrad (on the small graphs q(x, y) and f(q, z)), and
the end result is compared with what ``sg.value_and_grad`` computes on the whole graph.

Run:  python examples/backprop_slide.py [--backend numba|numpy]
      (default: the library's default backend; the SYMGRAD_BACKEND environment variable
      also chooses one)
"""

from _common import backend_kwargs, make_parser, sg


def main(argv=None):
    parser = make_parser(__doc__)
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    at = {"x": -2.0, "y": 5.0, "z": -4.0}
    x, y, z = sg.symbols("x y z")
    q = sg.symbols("q")  # the intermediate node, as its own variable for the local gradients

    print("f(x, y, z) = (x + y) * z   at", ", ".join(f"{k} = {v:g}" for k, v in at.items()))

    # local gradients, derived symbolically
    dq_dx, dq_dy = sg.grad(x + y, [x, y])
    df_dq, df_dz_local = sg.grad(q * z, [q, z])
    print("\nlocal gradients (symbolic):")
    print(f"  q = x + y   dq/dx = {sg.to_sympy(dq_dx)}, dq/dy = {sg.to_sympy(dq_dy)}")
    print(f"  f = q * z   df/dq = {sg.to_sympy(df_dq)}, df/dz = {sg.to_sympy(df_dz_local)}")

    # forward pass: each gate computes its output and, on the way, its local gradients
    add_gate = sg.value_and_grad(x + y, wrt=[x, y], **kw)
    mul_gate = sg.value_and_grad(q * z, wrt=[q, z], **kw)
    q_val, (dq_dx_val, dq_dy_val) = add_gate(x=at["x"], y=at["y"])
    f_val, (df_dq_local, df_dz_val) = mul_gate(q=q_val, z=at["z"])
    print("\nforward:")
    print(f"  q = x + y = {at['x']:g} + {at['y']:g} = {q_val:g}")
    print(f"  f = q * z = {q_val:g} * {at['z']:g} = {f_val:g}")

    # backward pass: upstream gradient x local gradient, from the output back
    df_df = 1.0
    df_dq_val = df_df * df_dq_local
    df_dz = df_df * df_dz_val
    df_dx = df_dq_val * dq_dx_val
    df_dy = df_dq_val * dq_dy_val
    print("\nbackward (upstream gradient x local gradient):")
    print(f"  df/df = {df_df:g}")
    print(f"  df/dq = df/df * z = {df_df:g} * {df_dq_local:g} = {df_dq_val:g}")
    print(f"  df/dz = df/df * q = {df_df:g} * {df_dz_val:g} = {df_dz:g}")
    print(f"  df/dx = df/dq * dq/dx = {df_dq_val:g} * {dq_dx_val:g} = {df_dx:g}")
    print(f"  df/dy = df/dq * dq/dy = {df_dq_val:g} * {dq_dy_val:g} = {df_dy:g}")

    # the same in one call on the whole graph
    f = (x + y) * z
    grads = sg.grad(f, [x, y, z])
    value, (gx, gy, gz) = sg.value_and_grad(f, wrt=[x, y, z], **kw)(**at)
    print("\nsg.grad on the whole graph:")
    for name, g, num in zip("xyz", grads, (gx, gy, gz)):
        print(f"  df/d{name} = {sg.to_sympy(g)!s:<8} = {num:g}")
    ok = (value, gx, gy, gz) == (f_val, df_dx, df_dy, df_dz) == (-12.0, -4.0, -4.0, 3.0)
    print("\nstep-by-step backprop matches sg.value_and_grad:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
