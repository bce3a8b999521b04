from tests.product_stack import person, product, product_stack, trusting_browser

__all__ = ["person", "product", "product_stack", "trusting_browser"]
