import asyncio


async def producer(queue, n):
    for i in range(n):
        await queue.put(i)
    await queue.put(None)


async def consumer(queue, name, seen):
    while (item := await queue.get()) is not None:
        seen.append((name, item * item))
    await queue.put(None)


async def main():
    queue = asyncio.Queue(maxsize=3)
    seen = []
    await asyncio.gather(producer(queue, 12), consumer(queue, "a", seen), consumer(queue, "b", seen))
    print(sorted(value for _, value in seen))
    print(len(seen))


asyncio.run(main())
