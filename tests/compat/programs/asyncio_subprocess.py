import asyncio
import sys


async def run(code):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode().strip(), err.decode().strip().splitlines()[-1:]


async def main():
    results = await asyncio.gather(run("print(6 * 7)"), run("import sys; sys.exit(5)"), run("1/0"))
    for result in results:
        print(result)


asyncio.run(main())
