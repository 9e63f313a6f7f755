"""Email: the pages behind the signed approve / reject links."""
