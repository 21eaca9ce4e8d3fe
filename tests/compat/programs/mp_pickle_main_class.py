import multiprocessing
from dataclasses import dataclass


@dataclass
class Job:
    name: str
    size: int

    def cost(self):
        return self.size * 3


def run(job):
    return Job(job.name.upper(), job.cost())


if __name__ == "__main__":
    jobs = [Job(f"job{i}", i) for i in range(6)]
    with multiprocessing.Pool(2) as pool:
        for result in pool.map(run, jobs):
            print(result)
