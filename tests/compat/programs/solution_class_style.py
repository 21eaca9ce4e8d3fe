from typing import List, Optional


class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next


class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [seen[target - n], i]
            seen[n] = i
        return []

    def reverse(self, head: Optional[ListNode]) -> Optional[ListNode]:
        prev = None
        while head:
            head.next, prev, head = prev, head, head.next
        return prev


s = Solution()
print(s.twoSum([2, 7, 11, 15], 9))
head = None
for v in range(5, 0, -1):
    head = ListNode(v, head)
node, values = s.reverse(head), []
while node:
    values.append(node.val)
    node = node.next
print(values)
assert s.twoSum([3, 3], 6) == [0, 1]
print("all tests passed")
