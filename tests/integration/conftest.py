from tests.product_stack import product, product_stack

__all__ = ["product", "product_stack"]
