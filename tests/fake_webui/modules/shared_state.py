"""State as in modules/shared_state.py: job counters and stop flags."""


class State:
    def __init__(self):
        self.begin()

    def begin(self, job="(unknown)"):
        self.job = job
        self.job_count = -1
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job_timestamp = "20240101000000"

    def end(self):
        self.job = ""
        self.job_count = 0

    def skip(self):
        self.skipped = True

    def interrupt(self):
        self.interrupted = True

    def nextjob(self):
        self.job_no += 1
        self.sampling_step = 0
