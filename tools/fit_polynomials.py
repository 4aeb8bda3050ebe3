"""Regenerate the polynomial coefficients of the in-house log, sin and cos (csrc/init_kernels.c).

Each polynomial interpolates its function at the Chebyshev nodes of the reduced interval, in
60-digit arithmetic (mpmath), and is printed as a C array in increasing powers.  The script also
prints the interpolation error relative to the function's value, in units of the dtype's
2^-24 / 2^-53.  Not run by the build: the arrays are committed; run this to check or change them.

    python tools/fit_polynomials.py
"""
import mpmath as mp

mp.mp.dps = 60


def interpolate(g, lo, hi, n):
    """Coefficients (increasing powers) of the degree n - 1 interpolant of g on [lo, hi]."""
    nodes = [(lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / n)
             for k in range(n)]
    vander = mp.matrix([[x ** j for j in range(n)] for x in nodes])
    return list(mp.lu_solve(vander, mp.matrix([g(x) for x in nodes])))


def worst(c, g, lo, hi, weight):
    grid = [lo + (hi - lo) * i / 4000 for i in range(1, 4000)]
    return max(abs(mp.polyval(c[::-1], x) - g(x)) * weight(x) for x in grid)


def log_tail(f):      # log1p(f) = f - f^2/2 + f^3 P(f)
    if abs(f) < mp.mpf("1e-12"):
        return mp.mpf(1) / 3 - f / 4
    return (mp.log1p(f) - f + f * f / 2) / f ** 3


def sin_tail(z):      # sin(x) = x + x z P(z), z = x^2
    x = mp.sqrt(z)
    return (mp.sin(x) - x) / (x * z) if z else -mp.mpf(1) / 6


def cos_tail(z):      # cos(x) = 1 - z/2 + z^2 Q(z)
    return (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z) if z else mp.mpf(1) / 24


F_LO, F_HI = mp.sqrt(0.5) - 1, mp.sqrt(2) - 1
Z_HI = (mp.pi / 4) ** 2
CASES = [  # name, function, interval, weight (error -> relative error of the result)
    ("log", log_tail, F_LO, F_HI, lambda f: abs(f) ** 3 / abs(mp.log1p(f))),
    ("sin", sin_tail, 0, Z_HI, lambda z: z / abs(mp.sin(mp.sqrt(z)) / mp.sqrt(z))),
    ("cos", cos_tail, 0, Z_HI, lambda z: z * z / mp.cos(mp.sqrt(z))),
]
TERMS = {("log", "f32"): 9, ("log", "f64"): 20, ("sin", "f32"): 3, ("sin", "f64"): 6,
         ("cos", "f32"): 3, ("cos", "f64"): 6}
UNIT = {"f32": mp.mpf(2) ** -24, "f64": mp.mpf(2) ** -53}

if __name__ == "__main__":
    for name, g, lo, hi, weight in CASES:
        for dt in ("f32", "f64"):
            c = interpolate(g, lo, hi, TERMS[name, dt])
            err = worst(c, g, lo, hi, weight) / UNIT[dt]
            print(f"/* interpolation error {mp.nstr(err, 2)} x 2^-{24 if dt == 'f32' else 53} */")
            print(f"static const double fb_{name}_coef_{dt}[{len(c)}] = {{")
            vals = [mp.nstr(v, 21, min_fixed=-4, max_fixed=4) for v in c]
            for i in range(0, len(vals), 3):
                print("    " + ", ".join(vals[i:i + 3]) + ",")
            print("};")
