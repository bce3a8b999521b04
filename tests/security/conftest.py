from tests.product_stack import product, product_stack
from tests.security.world import probe

__all__ = ["probe", "product", "product_stack"]
