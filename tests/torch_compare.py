"""The comparison the PyTorch tests share: herd's array against PyTorch's within atol + rtol*|want|,
counted, with the worst element printed on failure; summary() prints 'N passed, N failed' and
gives the exit status."""
import numpy as np

passed = failed = 0


def check(what, got, want, atol, rtol):
    global passed, failed
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        print(f"FAIL {what}: shape {got.shape} vs {want.shape}")
        failed += 1
        return
    err = np.abs(got - want)
    bad = err > atol + rtol * np.abs(want)
    if bad.any():
        i = np.unravel_index(np.argmax(err - rtol * np.abs(want)), err.shape)
        print(f"FAIL {what}: {bad.sum()} of {bad.size} differ; worst at {i}: herd {got[i]:.9g} torch {want[i]:.9g} "
              f"(atol {atol} rtol {rtol})")
        failed += 1
    else:
        passed += 1


def summary():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
