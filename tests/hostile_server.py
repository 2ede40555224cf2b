"""Fork server for the hostile corpus (tests/test_hostile.py): one process under a 2 GiB
address-space limit imports archsim and loads the datasets once, then forks one child per
case. Each child is a real process (its own exit code, signals, limits) running
``archsim.cli.main(argv)``, so a case costs milliseconds instead of a Python start-up.

Protocol: one JSON case per line on stdin, one JSON result per line on stdout.
A case: ``argv``, ``cwd``, ``stdout``, ``stderr`` (file paths), optional ``env``, ``umask``,
``fault`` (a name in FAULTS, injected in the child before ``main``), ``sigint_after`` (s),
``timeout`` (s). A result: ``code`` (None if killed at the timeout), ``seconds``,
``maxrss_kb``, ``sigint_to_exit_s``.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sys
import time


def set_memory_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# -- faults injected in a child after training (monkeypatching in the child only) ----------------
def _fault_nonfinite() -> None:
    import archsim.runner as runner

    original = runner.summarize

    def summarize(config, result, hardware):
        summary = original(config, result, hardware)  # the typed RunSummary
        first = next(iter(summary.train_loss))
        summary.train_loss[first][0] = float("nan")
        summary.writes.mean_per_device = float("inf")
        return summary

    runner.summarize = summarize


def _enospc(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _fault_enospc_summary() -> None:
    import archsim.runner as runner

    original = runner.atomic_write_json

    def write(path, data):
        if os.path.basename(str(path)) == "summary.json":
            raise _enospc(path)
        return original(path, data)

    runner.atomic_write_json = write


def _fault_enospc_everywhere() -> None:
    import archsim.io as io
    import archsim.runner as runner

    def refuse(path, *args, **kwargs):
        raise _enospc(path)

    for name in ("atomic_write_json", "atomic_write_text", "atomic_write_npz"):
        setattr(runner, name, refuse)
        setattr(io, name, refuse)


def _fault_readonly_at_rename() -> None:
    import archsim.io as io

    def refuse(new, final):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(final))

    io.replace_directory = refuse


def _fault_user_file_during_training() -> None:
    import archsim.runner as runner

    original = runner.train

    def train(config, show_progress=False):
        outcome = original(config, show_progress)
        with open("earlier/added-while-training.txt", "w") as handle:
            handle.write("mine\n")
        return outcome

    runner.train = train


def _fault_summary_bug() -> None:
    import archsim.runner as runner

    def summarize(config, result, hardware):
        raise ValueError("injected bug in the summary")

    runner.summarize = summarize


def _fault_trace_enospc() -> None:
    import archsim.engine.architecture as architecture

    def write_trace(self, path):
        raise _enospc(path)

    architecture.Architecture.write_trace = write_trace


FAULTS = {
    "nonfinite": _fault_nonfinite,
    "enospc_summary": _fault_enospc_summary,
    "enospc_everywhere": _fault_enospc_everywhere,
    "readonly_at_rename": _fault_readonly_at_rename,
    "user_file_during_training": _fault_user_file_during_training,
    "summary_bug": _fault_summary_bug,
    "trace_enospc": _fault_trace_enospc,
}


def run_child(case: dict) -> None:
    code = 1
    try:
        os.chdir(case["cwd"])
        os.environ.update(case.get("env") or {})
        if "umask" in case:
            os.umask(case["umask"])
        out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if case.get("fault"):
            FAULTS[case["fault"]]()
        import archsim.cli

        code = archsim.cli.main(case["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    set_memory_limit(int(sys.argv[1]))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import archsim.cli  # noqa: F401  (everything a case needs, imported once)
    import archsim.engine.architecture  # noqa: F401
    import archsim.report  # noqa: F401
    import archsim.runner  # noqa: F401
    import archsim.sweep.execute  # noqa: F401
    from archsim.data import load_split
    from archsim.errors import DataError

    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):
            try:
                load_split(name, split)
            except DataError:
                pass
    reply = sys.stdout
    reply.write("ready\n")
    reply.flush()
    for line in sys.stdin:
        case = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(case)
        result = {"code": None, "sigint_to_exit_s": None}
        deadline = start + float(case.get("timeout", 60))
        signalled_at = None
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            now = time.monotonic()
            if done:
                result["code"] = os.waitstatus_to_exitcode(status)
                result["maxrss_kb"] = usage.ru_maxrss
                break
            if case.get("sigint_after") is not None and signalled_at is None and now - start >= case["sigint_after"]:
                os.kill(pid, signal.SIGINT)
                signalled_at = now
            if now > deadline:
                os.kill(pid, signal.SIGKILL)
                os.wait4(pid, 0)
                break
            time.sleep(0.01)
        result["seconds"] = time.monotonic() - start
        if signalled_at is not None and result["code"] is not None:
            result["sigint_to_exit_s"] = time.monotonic() - signalled_at
        reply.write(json.dumps(result) + "\n")
        reply.flush()


if __name__ == "__main__":
    serve()
