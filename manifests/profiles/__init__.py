"""Built-in session profiles (one YAML file per profile): default, full, quick."""
