#!/usr/bin/env bash
# One entry for people: sets up .venv on first use (again when requirements.txt changes), then
#   ./run.sh [run]        the bot in the foreground, with its WORKERS worker processes
#                         (Ctrl+C stops them all)
#   ./run.sh worker       one worker alone (for WORKERS=0, or workers on another server)
#   ./run.sh start|stop|restart|status   the bot in the background (pid in run/bot.pid,
#                         output in logs/nohup.out): the cron @reboot way of the original design
#   ./run.sh demo                         the whole product, offline, as a chat transcript
#   ./run.sh test [pytest args]          the test suite: the fast tier first, then end to end
#   ./run.sh test --fast [pytest args]   the fast tier alone (tests/fast/, in process)
#   ./run.sh bench [--quick]             the benchmark
#   ./run.sh lint                         ruff
#   ./run.sh setup                        only prepare .venv
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PID_FILE="$ROOT/run/bot.pid"

find_python() {
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Python 3.11 or newer is needed (python3.11 not found)." >&2
    return 1
}

setup_venv() {
    local stamp="$VENV/.requirements.sha256" wanted
    wanted="$(sha256sum requirements.txt | cut -d' ' -f1)"
    if [[ -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        return 0
    fi
    if [[ ! -x "$PY" ]]; then
        echo "Creating .venv ..." >&2
        "$(find_python)" -m venv "$VENV"
    fi
    echo "Installing requirements.txt into .venv ..." >&2
    "$PY" -m pip install --disable-pip-version-check -q -r requirements.txt
    echo "$wanted" > "$stamp"
}

bot_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

command="${1:-run}"
[[ $# -gt 0 ]] && shift

case "$command" in
    setup)
        setup_venv ;;
    run)
        setup_venv
        exec "$PY" main.py "$@" ;;
    worker)
        setup_venv
        exec "$PY" main.py worker "$@" ;;
    start)
        setup_venv
        if pid="$(bot_pid)"; then echo "The bot is already running (pid $pid)."; exit 0; fi
        mkdir -p run logs
        # The output may hold what the log files hold: readable by the owner only.
        (umask 077 && touch logs/nohup.out) && chmod 600 logs/nohup.out
        nohup "$PY" main.py "$@" >> logs/nohup.out 2>&1 &
        echo $! > "$PID_FILE"
        sleep 2
        if pid="$(bot_pid)"; then
            echo "The bot is running in the background (pid $pid); output: logs/nohup.out"
        else
            echo "The bot stopped right away; see logs/nohup.out:" >&2
            tail -n 20 logs/nohup.out >&2
            exit 1
        fi ;;
    stop)
        if ! pid="$(bot_pid)"; then echo "The bot is not running."; rm -f "$PID_FILE"; exit 0; fi
        kill -TERM "$pid"
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "The bot did not stop in 30 s; killing it." >&2
            kill -KILL "$pid"
        fi
        rm -f "$PID_FILE"
        echo "The bot is stopped." ;;
    restart)
        "$0" stop
        "$0" start "$@" ;;
    status)
        if pid="$(bot_pid)"; then echo "running (pid $pid)"; else echo "stopped"; exit 3; fi ;;
    test)
        setup_venv
        if [[ "${1:-}" == "--fast" ]]; then
            shift
            # Only tests/fast/ is collected unless a path under tests/ is named.
            where=(tests/fast)
            for arg in "$@"; do [[ "$arg" == tests/* ]] && where=(); done
            exec "$PY" -m pytest -m fast ${where[@]+"${where[@]}"} "$@"
        fi
        exec "$PY" -m pytest "$@" ;;
    demo)
        setup_venv
        exec "$PY" -m sandbox.demo "$@" ;;
    bench)
        setup_venv
        exec "$PY" -m tests.bench "$@" ;;
    lint)
        setup_venv
        exec "$PY" -m ruff check . "$@" ;;
    *)
        echo "usage: ./run.sh [run|worker|start|stop|restart|status|demo|test|bench|lint|setup]" >&2
        exit 64 ;;
esac
