"""A pymesos scheduler that runs two tasks under one custom executor (executor.py).

Usage: scheduler.py MASTER_HOST:PORT EXECUTOR_COMMAND

Task "greeter" gets a framework message ("ping") once it runs; the executor answers "pong"
and finishes it. Task "sleeper" is killed once it runs; the executor reports it killed.
Prints one line per event and exits 0 once all of that happened, 1 on anything else.
"""

import sys
import threading

from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data

master, executor_command = sys.argv[1], sys.argv[2]
TERMINAL_BAD = {"TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"}


def say(*words):
    print(*words, flush=True)


class TwoTasks(Scheduler):
    def __init__(self):
        self.launched = False
        self.finished = False
        self.killed = False
        self.pong = False
        self.failure = None
        self.done = threading.Event()

    def check(self):
        if self.finished and self.killed and self.pong:
            self.done.set()

    def fail(self, why):
        self.failure = why
        self.done.set()

    def registered(self, driver, framework_id, master_info):
        say("registered", framework_id["value"])

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if self.launched:
                driver.declineOffer(offer["id"], {"refuse_seconds": 60})
                continue
            executor = {
                "executor_id": {"value": "pyexec"},
                "name": "pymesos test executor",
                "command": {"value": executor_command},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
            }

            def task(name):
                return {
                    "name": name,
                    "task_id": {"value": name},
                    "agent_id": offer["agent_id"],
                    "executor": executor,
                    "data": encode_data(name.encode()),
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                    ],
                }

            driver.launchTasks(offer["id"], [task("greeter"), task("sleeper")])
            self.launched = True
            say("launched", offer["agent_id"]["value"])

    def statusUpdate(self, driver, status):
        task, state = status["task_id"]["value"], status["state"]
        say("status", task, state, status.get("source", ""))
        if state in TERMINAL_BAD:
            self.fail("%s %s: %s" % (task, state, status.get("message", "")))
        elif task == "greeter" and state == "TASK_RUNNING":
            driver.sendFrameworkMessage(
                status["executor_id"], status["agent_id"], encode_data(b"ping")
            )
        elif task == "sleeper" and state == "TASK_RUNNING":
            driver.killTask({"value": "sleeper"})
        elif task == "greeter" and state == "TASK_FINISHED":
            self.finished = True
        elif task == "sleeper" and state == "TASK_KILLED":
            self.killed = True
        self.check()

    def frameworkMessage(self, driver, executor_id, agent_id, data):
        text = decode_data(data).decode()
        say("message", executor_id["value"], text)
        self.pong = self.pong or text.startswith("pong")
        self.check()

    def error(self, driver, message):
        self.fail("error: " + message)


scheduler = TwoTasks()
framework = {"user": "root", "name": "pymesos-test", "hostname": "localhost", "failover_timeout": 60}
driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=False)
driver.start()
ok = scheduler.done.wait(90)
driver.stop()
driver.join()
if not ok:
    say("timeout")
    sys.exit(1)
if scheduler.failure:
    say("failure", scheduler.failure)
    sys.exit(1)
say("ok")
