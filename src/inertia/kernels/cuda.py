"""placeholder"""
def available():
    return False
