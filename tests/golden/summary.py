"""Recomputes the figures in tests/golden_summary.rs with plain Python (numpy-style linear
percentiles, population std). Run: python3 tests/golden/summary.py"""
import math

def pct(xs, p):
    xs = sorted(xs); r = p / 100 * (len(xs) - 1); lo, hi = math.floor(r), math.ceil(r)
    return xs[lo] + (xs[hi] - xs[lo]) * (r - lo)

ok = [(100, 1000, 10, [100, 100]), (200, 2000, 19, [50, 150, 100]), (300, 1500, 5, [300]), (400, 4000, 31, [])]
ttft = [r[0] for r in ok]; e2el = [r[1] for r in ok]
tpot = [(r[1] - r[0]) / (r[2] - 1) for r in ok]
itl = [g for r in ok for g in r[3]]
mean = lambda xs: sum(xs) / len(xs)
std = lambda xs: math.sqrt(sum((x - mean(xs)) ** 2 for x in xs) / len(xs))
print("ttft", mean(ttft), std(ttft), pct(ttft, 90), pct(ttft, 99))
print("tpot", mean(tpot), pct(tpot, 50), pct(tpot, 90))
print("itl", mean(itl), pct(itl, 50), pct(itl, 90), pct(itl, 99))
print("e2el", mean(e2el), pct(e2el, 50), pct(e2el, 99))
