"""`python -m msgops.schemas`: regenerate the shipped JSON Schemas from the code that writes the documents."""

from msgops.schemas import write

for path in write():
    print(path)
