from typing import List, Optional, Tuple

OK: int
BUDGET_NOT_MET: int
BAD_INPUT: int
RUNTIME_FAILURE: int
INTERRUPTED: int

def main(argv: List[str]) -> int: ...
def run(argv: List[str]) -> Tuple[int, Optional[str]]: ...
