"""A pymesos custom executor: runs every task it gets until told otherwise.

On a framework message "ping" it answers "pong <sandbox>" and finishes task "greeter"; a
killed task is reported TASK_KILLED.
"""

import os
import threading

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class Tasks(Executor):
    def __init__(self):
        self.running = {}
        self.lock = threading.Lock()

    def update(self, driver, task_id, state, message=""):
        driver.sendStatusUpdate({"task_id": task_id, "state": state, "message": message})

    def launchTask(self, driver, task):
        with self.lock:
            self.running[task["task_id"]["value"]] = task
        self.update(driver, task["task_id"], "TASK_RUNNING", decode_data(task["data"]).decode())

    def killTask(self, driver, task_id):
        with self.lock:
            self.running.pop(task_id["value"], None)
        self.update(driver, task_id, "TASK_KILLED", "killed by request")

    def frameworkMessage(self, driver, data):
        if decode_data(data) == b"ping":
            driver.sendFrameworkMessage(encode_data(("pong " + os.environ["MESOS_SANDBOX"]).encode()))
            with self.lock:
                task = self.running.pop("greeter", None)
            if task is not None:
                self.update(driver, task["task_id"], "TASK_FINISHED", "greeted")


MesosExecutorDriver(Tasks(), use_addict=False).run()
